// Integration scenario for the WebSocket client against a live Bourse (run by tests/sdk/):
// follows the BTC-USD book and the taker's private streams while trading over REST, then
// forces a disconnect, trades while disconnected, and checks that the resumed streams
// deliver every missed event exactly once and that the book is rebuilt. Prints one JSON line.
import assert from "node:assert/strict";
import { Bourse, BourseStream, compareDecimal, type OrderFrame, type FillFrame, type BalanceFrame } from "@bourse/sdk";

const baseUrl = process.env.BOURSE_URL ?? "";
const maker = JSON.parse(process.env.BOURSE_MAKER ?? "{}") as { key_id: string; secret: string };
const taker = JSON.parse(process.env.BOURSE_TAKER ?? "{}") as { key_id: string; private_key: string; account_id: string };
const MARKET = "BTC-USD";

const makerRest = new Bourse({ baseUrl, key: maker.key_id, secret: maker.secret });
const takerRest = new Bourse({ baseUrl, key: taker.key_id, privateKey: taker.private_key });
const stream = new BourseStream({
  url: baseUrl, key: taker.key_id, privateKey: taker.private_key,
  // Long enough to trade while disconnected; heartbeats short enough to be exercised.
  reconnectDelayMs: 1000, heartbeatIntervalMs: 2000, heartbeatTimeoutMs: 5000,
});

/** Resolves once `check` holds, re-evaluated after each stream event (bounded). */
function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (error?: Error) => {
      clearTimeout(timer);
      for (const off of offs) off();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), timeoutMs);
    const test = () => { if (check()) done(); };
    for (const event of ["book", "order", "fill", "balance", "open", "close"] as const) offs.push(stream.on(event, test));
  });
}

const orders: OrderFrame[] = [];
const fills: FillFrame[] = [];
const balances: BalanceFrame[] = [];
const events: string[] = [];
stream.on("order", (frame) => orders.push(frame));
stream.on("fill", (frame) => fills.push(frame));
stream.on("balance", (frame) => balances.push(frame));
stream.on("gap", (info) => events.push(`gap ${info.channel}`));
stream.on("checksum", (info) => events.push(`checksum ${info.channel} ${info.sequence}`));
stream.on("resync", (info) => events.push(`resync ${info.channel}`));
stream.on("close", () => events.push("close"));
stream.on("open", (info) => events.push(info.reconnected ? "reopen" : "open"));
stream.on("error", (error) => events.push(`error ${error.code}`));

const summary: Record<string, unknown> = {};
const bestAsk = () => stream.book(MARKET)?.bestAsk();
/** The best ask's quantity equals `quantity` (exact decimal comparison). */
const askQuantityIs = (quantity: string) => { const level = bestAsk(); return level !== undefined && compareDecimal(level[1], quantity) === 0; };

await stream.connect();
const started = await stream.subscribe([`book:${MARKET}`, `trades:${MARKET}`, "orders", "fills", "balances"]);
summary.subscribed = started.map((s) => s.channel);
summary.ping_ms_ok = (await stream.ping()) >= 0;

// The maker's ask shows up in the local book.
const ask = await makerRest.orders.submit({ market: MARKET, side: "sell", type: "limit", price: "100.00", quantity: "0.5" });
await until("the ask in the book", () => askQuantityIs("0.5"));
summary.book_after_ask = stream.book(MARKET)?.asks();

// The taker buys 0.1: its order, fill and balance events arrive; the book shrinks.
const first = await takerRest.orders.submit({ market: MARKET, side: "buy", type: "limit", price: "100.00", quantity: "0.1" });
await until("the first fill", () => fills.some((f) => f.data.order_id === first.order_id)
  && orders.some((o) => o.data.order_id === first.order_id && o.data.status === "filled"));
await until("the book after the first trade", () => askQuantityIs("0.4"));

// Forced disconnect; trade while nobody listens; the resumed streams must replay it.
const closed = new Promise<void>((resolve) => { const off = stream.on("close", () => { off(); resolve(); }); });
stream.reconnect();
await closed;
const missed = await takerRest.orders.submit({ market: MARKET, side: "buy", type: "limit", price: "100.00", quantity: "0.1" });
await until("the reconnect", () => stream.connected);
await until("the missed fill", () => fills.some((f) => f.data.order_id === missed.order_id)
  && orders.some((o) => o.data.order_id === missed.order_id && o.data.status === "filled"));
await until("the rebuilt book", () => askQuantityIs("0.3"));

const contiguous = (frames: { sequence: number }[]) => frames.every((f, i) => i === 0 || f.sequence === frames[i - 1]!.sequence + 1);
assert.ok(contiguous(orders), `order sequences ${orders.map((o) => o.sequence)}`);
assert.ok(contiguous(fills), `fill sequences ${fills.map((f) => f.sequence)}`);
assert.ok(contiguous(balances), `balance sequences ${balances.map((b) => b.sequence)}`);

summary.ask_order = ask.order_id;
summary.first_order = first.order_id;
summary.missed_order = missed.order_id;
summary.order_events = orders.map((o) => ({ sequence: o.sequence, order_id: o.data.order_id, status: o.data.status }));
summary.fill_events = fills.map((f) => ({ sequence: f.sequence, order_id: f.data.order_id, quantity: f.data.quantity }));
summary.balance_assets = [...new Set(balances.map((b) => b.data.asset))].sort();
summary.book_final = { sequence: stream.book(MARKET)?.sequence, asks: stream.book(MARKET)?.asks() };
summary.rest_book_sequence = (await takerRest.markets.book(MARKET)).sequence;
summary.last_sequences = { orders: stream.lastSequence("orders"), fills: stream.lastSequence("fills") };
summary.unsubscribed = await stream.unsubscribe([`trades:${MARKET}`]);
summary.events = events;
stream.close();
console.log(JSON.stringify(summary));
