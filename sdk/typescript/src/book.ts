/**
 * A local order book kept from a `book:{symbol}` snapshot and its updates. Each update carries
 * the market's sequence, rising by exactly one; anything else is a gap, and the book must be
 * rebuilt from a fresh snapshot (the stream client resubscribes). Every frame also carries a
 * `checksum` of the top 25 levels after it: the book computes its own and reports a mismatch
 * (`checksum_mismatch`), which also means "rebuild from a fresh snapshot". Prices and
 * quantities stay decimal strings and are compared as decimals, never as floats.
 */

/** `[price, quantity]`; in an update, quantity `"0"` removes the level. */
export type BookLevel = [price: string, quantity: string];

export interface BookSnapshot {
  market: string;
  sequence: number;
  bids: BookLevel[];
  asks: BookLevel[];
  /** CRC32 of the top `CHECKSUM_DEPTH` levels after this frame (see `bookChecksum`). */
  checksum?: number;
}

/**
 * What applying an update did: applied it, ignored an old one, found a gap, or applied it and
 * found the result disagrees with the frame's checksum (the copy must be rebuilt).
 */
export type ApplyResult = "applied" | "stale" | "gap" | "checksum_mismatch";

/** Levels per side the checksum covers. */
export const CHECKSUM_DEPTH = 25;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as zlib's `crc32`) of a string's UTF-8 bytes, unsigned. */
export function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(text)) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * The book checksum of docs/websocket.md: CRC32 of `bid_price:bid_qty:ask_price:ask_qty:…`
 * over the top `depth` levels per side, best first, with the wire strings; once a side runs
 * out it contributes nothing.
 */
export function bookChecksum(bids: readonly BookLevel[], asks: readonly BookLevel[], depth = CHECKSUM_DEPTH): number {
  const parts: string[] = [];
  for (let i = 0; i < depth; i++) {
    const bid = bids[i];
    const ask = asks[i];
    if (bid) parts.push(bid[0], bid[1]);
    if (ask) parts.push(ask[0], ask[1]);
  }
  return crc32(parts.join(":"));
}

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

  /** The checksum of this copy (compare with a frame's `checksum`). */
  checksum(): number {
    return bookChecksum(this.bids(CHECKSUM_DEPTH), this.asks(CHECKSUM_DEPTH));
  }

  /** Whether this copy matches a frame's `checksum` (true when the frame carries none). */
  verify(frame: Pick<BookSnapshot, "checksum">): boolean {
    return frame.checksum === undefined || frame.checksum === this.checksum();
  }

  /**
   * Applies an update if it is the next in sequence; a later one is a gap, an earlier one
   * stale. After applying, the update's `checksum` is checked: `checksum_mismatch` means this
   * copy no longer matches the server's book.
   */
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
    return this.verify(update) ? "applied" : "checksum_mismatch";
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
