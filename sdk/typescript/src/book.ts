/**
 * A local order book kept from a `book:{symbol}` snapshot and its updates. Each update carries
 * the market's sequence, rising by exactly one; anything else is a gap, and the book must be
 * rebuilt from a fresh snapshot (the stream client resubscribes). Prices and quantities stay
 * decimal strings and are compared as decimals, never as floats.
 */

/** `[price, quantity]`; in an update, quantity `"0"` removes the level. */
export type BookLevel = [price: string, quantity: string];

export interface BookSnapshot {
  market: string;
  sequence: number;
  bids: BookLevel[];
  asks: BookLevel[];
}

/** What applying an update did: applied it, ignored an old one, or found a gap. */
export type ApplyResult = "applied" | "stale" | "gap";

/** Compares two non-negative decimal strings exactly (`"100.5"` vs `"99.75"`). */
export function compareDecimal(a: string, b: string): number {
  const [ai = "", af = ""] = a.split(".");
  const [bi = "", bf = ""] = b.split(".");
  const aInt = ai.replace(/^0+(?=\d)/, "");
  const bInt = bi.replace(/^0+(?=\d)/, "");
  if (aInt.length !== bInt.length) return aInt.length < bInt.length ? -1 : 1;
  if (aInt !== bInt) return aInt < bInt ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const aFrac = af.padEnd(width, "0");
  const bFrac = bf.padEnd(width, "0");
  return aFrac === bFrac ? 0 : aFrac < bFrac ? -1 : 1;
}

function isZero(quantity: string): boolean {
  return /^0*(\.0*)?$/.test(quantity);
}

export class LocalOrderBook {
  readonly market: string;
  /** The book's sequence: that of the snapshot or the last update applied. */
  sequence: number;
  // Keyed by the price string as the server sent it: one market, one scale, one spelling.
  readonly #bids = new Map<string, string>();
  readonly #asks = new Map<string, string>();

  constructor(snapshot: BookSnapshot) {
    this.market = snapshot.market;
    this.sequence = snapshot.sequence;
    for (const [price, quantity] of snapshot.bids) this.#bids.set(price, quantity);
    for (const [price, quantity] of snapshot.asks) this.#asks.set(price, quantity);
  }

  /** Applies an update if it is the next in sequence; a later one is a gap, an earlier one stale. */
  apply(update: BookSnapshot): ApplyResult {
    if (update.sequence <= this.sequence) return "stale";
    if (update.sequence !== this.sequence + 1) return "gap";
    for (const [side, levels] of [[this.#bids, update.bids], [this.#asks, update.asks]] as const) {
      for (const [price, quantity] of levels) {
        if (isZero(quantity)) side.delete(price);
        else side.set(price, quantity);
      }
    }
    this.sequence = update.sequence;
    return "applied";
  }

  /** Bids, best (highest) first, at most `depth` levels. */
  bids(depth = Number.POSITIVE_INFINITY): BookLevel[] {
    return [...this.#bids].sort(([a], [b]) => compareDecimal(b, a)).slice(0, depth);
  }

  /** Asks, best (lowest) first, at most `depth` levels. */
  asks(depth = Number.POSITIVE_INFINITY): BookLevel[] {
    return [...this.#asks].sort(([a], [b]) => compareDecimal(a, b)).slice(0, depth);
  }

  bestBid(): BookLevel | undefined {
    return this.bids(1)[0];
  }

  bestAsk(): BookLevel | undefined {
    return this.asks(1)[0];
  }
}
