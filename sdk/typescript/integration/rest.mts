// Integration scenario for the REST client against a live Bourse (run by tests/sdk/, which
// starts the server and engine and creates the traders). Trades through the SDK exactly as an
// integrator would, checks each answer with node:assert, and prints one JSON summary line for
// the Python side to cross-check against the database.
//
//   BOURSE_URL=... BOURSE_MAKER='{"key_id","secret"}' BOURSE_TAKER='{"key_id","private_key"}' node rest.mjs
import assert from "node:assert/strict";
import { Bourse, BourseError, type Order } from "@bourse/sdk";

const baseUrl = process.env.BOURSE_URL ?? "";
const makerCredentials = JSON.parse(process.env.BOURSE_MAKER ?? "{}") as { key_id: string; secret: string; account_id: string };
const takerCredentials = JSON.parse(process.env.BOURSE_TAKER ?? "{}") as { key_id: string; private_key: string; account_id: string };
const MARKET = "BTC-USD";

const maker = new Bourse({ baseUrl, key: makerCredentials.key_id, secret: makerCredentials.secret });
const taker = new Bourse({ baseUrl, key: takerCredentials.key_id, privateKey: takerCredentials.private_key });

/** The BourseError a call is refused with (fails the scenario if it is not refused). */
async function refusal(call: Promise<unknown>): Promise<BourseError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof BourseError) return error;
    throw error;
  }
  assert.fail("expected a refusal");
}

const summary: Record<string, unknown> = {};

// Public data, unsigned.
const time = await maker.time();
assert.ok(Math.abs(time.epoch_ms - Date.now()) < 60_000);
const markets = await new Bourse({ baseUrl }).markets.list().toArray();
summary.markets = markets.map((m) => m.symbol);
const market = await maker.markets.get(MARKET);
summary.tick_size = market.tick_size;

// Identity of each key.
summary.maker_account = (await maker.account()).account_id;
summary.taker_account = (await taker.account()).account_id;
summary.taker_scheme = (await taker.account()).api_key.scheme;

// A resting sell, submitted twice with one client_order_id: one order.
const ask = { market: MARKET, side: "sell", type: "limit", price: "100.00", quantity: "0.5", client_order_id: "sdk-ask-1" } as const;
const rested = await maker.orders.submit(ask);
const again = await maker.orders.submit(ask);
assert.equal(again.order_id, rested.order_id);
summary.rested = { order_id: rested.order_id, status: rested.status };
assert.equal((await maker.orders.getByClientId("sdk-ask-1")).order_id, rested.order_id);

// A second sell, cancelled.
const far = await maker.orders.submit({ market: MARKET, side: "sell", type: "limit", price: "105.00", quantity: "0.1" });
const cancelled = await maker.orders.cancel(far.order_id);
summary.cancelled = { order_id: cancelled.order_id, status: cancelled.status };

// The book shows the resting ask only.
const book = await taker.markets.book(MARKET, { depth: 5 });
summary.book_asks = book.asks;
summary.book_sequence = book.sequence;

// The taker buys part of it (Ed25519-signed).
const bought: Order = await taker.orders.submit({ market: MARKET, side: "buy", type: "limit", price: "100.00", quantity: "0.2" });
summary.bought = { order_id: bought.order_id, status: bought.status, average_price: bought.average_price, filled: bought.filled_quantity };

// Fills settle into balances asynchronously (the settlement worker): wait for that, bounded.
let takerFills = await taker.fills.list({ market: MARKET }).toArray();
for (let tries = 0; tries < 100 && !takerFills.every((f) => f.settled); tries++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  takerFills = await taker.fills.list({ market: MARKET }).toArray();
}
assert.ok(takerFills.length > 0 && takerFills.every((f) => f.settled), "fills did not settle within 10 s");
// Fills, positions, balances, ledger.
const makerFills = await maker.fills.list({ order_id: rested.order_id }).toArray();
summary.taker_fills = takerFills.map((f) => ({ order_id: f.order_id, liquidity: f.liquidity, price: f.price, quantity: f.quantity }));
summary.maker_fills = makerFills.map((f) => ({ order_id: f.order_id, liquidity: f.liquidity, client_order_id: f.client_order_id }));
const positions = await taker.positions.list();
summary.taker_position = positions.filter((p) => p.market === MARKET).map((p) => ({ net_quantity: p.net_quantity, average_entry_price: p.average_entry_price }));
const balances: Record<string, { available: string; locked: string }> = {};
for await (const b of taker.balances.list({ limit: 1 })) balances[b.asset] = { available: b.available, locked: b.locked };
summary.taker_balances = balances;
summary.maker_ledger_kinds = (await maker.ledger.list({ asset: "BTC" }).toArray()).map((e) => e.kind);

// Pagination one order per page across all the maker's orders.
const allOrders: string[] = [];
for await (const order of maker.orders.list({ status: "all", limit: 1 })) allOrders.push(order.order_id);
summary.maker_orders = allOrders;
assert.deepEqual((await maker.orders.get(rested.order_id)).status, "partially_filled");

// Typed refusals.
const tick = await refusal(taker.orders.submit({ market: MARKET, side: "buy", type: "limit", price: "100.001", quantity: "0.1" }));
const broke = await refusal(taker.orders.submit({ market: MARKET, side: "buy", type: "limit", price: "100.00", quantity: "1000" }));
const missing = await refusal(taker.orders.get(rested.order_id)); // another account's order
const closed = await refusal(maker.orders.cancel(far.order_id));
const unknownMarket = await refusal(taker.orders.submit({ market: "NOPE-USD", side: "buy", type: "limit", price: "1.00", quantity: "1" }));
const badSecret = await refusal(new Bourse({ baseUrl, key: makerCredentials.key_id, secret: "not-the-secret" }).account());
summary.errors = Object.fromEntries(
  Object.entries({ tick, broke, missing, closed, unknownMarket, badSecret }).map(([name, e]) => [
    name, { status: e.status, code: e.code, request_id: e.requestId, fields: e.errors.map((f) => f.field) },
  ]),
);

// A client whose clock is ten minutes slow: refused once, re-synced from /time, accepted.
const slow = new Bourse({ baseUrl, key: makerCredentials.key_id, secret: makerCredentials.secret, clockOffsetMs: -600_000 });
summary.skewed_account = (await slow.account()).account_id;
summary.skew_corrected_offset_ms = slow.clockOffsetMs;

// Cancel-all leaves nothing open.
const extra = await maker.orders.submit({ market: MARKET, side: "sell", type: "limit", price: "110.00", quantity: "0.1" });
const all = await maker.orders.cancelAll({ market: MARKET });
summary.cancel_all = all.cancelled;
summary.extra_order = extra.order_id;
assert.deepEqual(await maker.orders.list({ market: MARKET }).toArray(), []);

// Rate-limit fields from the last signed response.
summary.rate_limit = maker.rateLimit;

console.log(JSON.stringify(summary));
