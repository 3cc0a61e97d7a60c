// The REST client against an in-process fake server (a fetch function): signing on the wire,
// error mapping, pagination, clock-skew correction, retries and rate-limit headers.
import { describe, expect, it } from "vitest";
import { Bourse, BourseError, createSigner, signRequest, UNEXPECTED_RESPONSE } from "../src/index.js";

const SECRET = "test-secret-not-real";
const signer = createSigner({ secret: SECRET });

interface Seen {
  method: string;
  path: string;
  query: string;
  body: string;
  headers: Headers;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const type = status >= 400 ? "application/problem+json" : "application/json";
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": type, "X-Request-ID": "req-1", ...headers } });
}

function problem(status: number, code: string, extra: Record<string, unknown> = {}): Response {
  return json(status, { type: `/docs/errors#${code}`, title: code, status, detail: `refused: ${code}`, code, request_id: "req-42", ...extra });
}

/** A fake server: records each request (verifying its signature) and answers with `handler`. */
function fakeServer(handler: (seen: Seen, index: number) => Response | Promise<Response>) {
  const requests: Seen[] = [];
  const fetch = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const seen: Seen = {
      method: request.method, path: url.pathname, query: url.search.slice(1), body: await request.text(), headers: request.headers,
    };
    if (request.headers.has("X-API-Signature")) {
      const expected = await signRequest(signer, {
        timestamp: request.headers.get("X-API-Timestamp")!, nonce: request.headers.get("X-API-Nonce")!,
        method: seen.method, path: seen.path, query: seen.query, body: seen.body,
      });
      if (expected !== request.headers.get("X-API-Signature")) return problem(401, "invalid_credentials");
    }
    requests.push(seen);
    return handler(seen, requests.length - 1);
  };
  return { fetch, requests };
}

function client(fetch: (request: Request) => Promise<Response>, extra: Partial<ConstructorParameters<typeof Bourse>[0]> = {}) {
  return new Bourse({ baseUrl: "http://bourse.test/", key: "bk_test", secret: SECRET, fetch, retryDelayMs: 1, ...extra });
}

const ORDER = {
  order_id: "o1", client_order_id: "c1", market: "BTC-USD", side: "buy", type: "limit", time_in_force: "gtc",
  post_only: false, stp: "cancel_newest", price: "100.00", quantity: "0.5", quote_quantity: null,
  filled_quantity: "0", remaining_quantity: "0.5", average_price: null, status: "open", reject_reason: null,
  cancel_reason: null, created_at: "2026-11-24T00:00:00.000000Z", updated_at: "2026-11-24T00:00:00.000000Z",
};

describe("signing on the wire", () => {
  it("signs private requests with path, query and exact body bytes; leaves public ones unsigned", async () => {
    const server = fakeServer((seen) => (seen.path === "/api/v1/time"
      ? json(200, { server_time: "2026-11-24T00:00:00.000000Z", epoch_ms: Date.now() })
      : seen.path === "/api/v1/orders" && seen.method === "POST" ? json(201, ORDER) : json(200, { results: [], next_cursor: null })));
    const bourse = client(server.fetch, { windowMs: 10000 });
    await bourse.time();
    await bourse.ledger.list({ asset: "USD", limit: 2 }).page();
    await bourse.orders.submit({ market: "BTC-USD", side: "buy", type: "limit", price: "100.00", quantity: "0.5" });
    const [time, ledger, submit] = server.requests;
    expect(time!.headers.has("X-API-Signature")).toBe(false);
    expect(ledger!.query).toBe("asset=USD&limit=2");
    expect(ledger!.headers.get("X-API-Key")).toBe("bk_test");
    expect(ledger!.headers.get("X-API-Window")).toBe("10000");
    expect(JSON.parse(submit!.body)).toEqual({ market: "BTC-USD", side: "buy", type: "limit", price: "100.00", quantity: "0.5" });
    expect(submit!.headers.get("Content-Type")).toBe("application/json");
  });

  it("refuses a private call without credentials before sending anything", async () => {
    const server = fakeServer(() => json(200, {}));
    const bourse = new Bourse({ baseUrl: "http://bourse.test", fetch: server.fetch });
    await expect(bourse.account()).rejects.toThrow(/needs credentials/);
    expect(server.requests).toHaveLength(0);
  });
});

describe("market data", () => {
  it("reads assets, tickers and candles unsigned; sends time ranges as RFC 3339", async () => {
    const bar = { open_time: "2026-11-23T18:00:00.000000Z", open: "1.00", high: "1.00", low: "1.00", close: "1.00",
      volume: "1.0", quote_volume: "1.00", trades: 1 };
    const server = fakeServer((seen) => {
      if (seen.path.endsWith("/candles")) return json(200, [bar]);
      if (seen.path === "/api/v1/assets") return json(200, { results: [{ symbol: "BTC", decimals: 8 }], next_cursor: null });
      return json(200, { results: [], next_cursor: null });
    });
    const bourse = client(server.fetch);
    expect(await bourse.markets.candles("BTC-USD", "1h", { start: new Date(Date.UTC(2026, 10, 23, 18)), limit: 2 }))
      .toEqual([bar]);
    expect(await bourse.assets.list().toArray()).toEqual([{ symbol: "BTC", decimals: 8 }]);
    await bourse.tickers.list({ limit: 5 }).page();
    await bourse.markets.trades("BTC-USD", { start_time: "2026-11-23T18:00:00Z", end_time: "2026-11-23T19:00:00Z" }).page();
    await bourse.fills.list({ start_time: "2026-11-23T18:00:00Z" }).page();
    const [candles, assets, tickers, trades, fills] = server.requests;
    expect(candles!.path).toBe("/api/v1/markets/BTC-USD/candles");
    expect(new URLSearchParams(candles!.query).get("start")).toBe("2026-11-23T18:00:00.000Z");
    expect(new URLSearchParams(candles!.query).get("interval")).toBe("1h");
    for (const unsigned of [candles, assets, tickers, trades]) expect(unsigned!.headers.has("X-API-Signature")).toBe(false);
    expect(tickers!.path).toBe("/api/v1/tickers");
    expect(new URLSearchParams(trades!.query).get("end_time")).toBe("2026-11-23T19:00:00Z");
    expect(fills!.headers.has("X-API-Signature")).toBe(true);
    expect(new URLSearchParams(fills!.query).get("start_time")).toBe("2026-11-23T18:00:00Z");
  });
});

describe("order management (second wave)", () => {
  it("amends, cancels by client id, sends batches and arms the dead-man switch, signed", async () => {
    const server = fakeServer((seen) => {
      if (seen.path === "/api/v1/orders/batch") {
        return json(200, { results: [{ status: 201, order: ORDER }, { status: 400, error: { code: "validation_error" } }] });
      }
      if (seen.path === "/api/v1/cancel-after") {
        return json(200, { current_time: "2026-11-24T00:00:00.000000Z", trigger_time: "2026-11-24T00:00:05.000000Z" });
      }
      return json(200, ORDER);
    });
    const bourse = client(server.fetch);
    await bourse.orders.amend("o1", { quantity: "0.4" });
    await bourse.orders.cancelByClientId("c-1");
    const batch = await bourse.orders.batch([
      { market: "BTC-USD", side: "buy", type: "stop_limit", price: "101.00", stop_price: "100.50", quantity: "0.5" },
      { market: "BTC-USD", side: "buy", type: "limit", price: "1.001", quantity: "1" },
    ]);
    const armed = await bourse.cancelAfter(5000);
    await bourse.orders.place({ market: "BTC-USD", side: "sell", type: "limit", price: "100.00", quantity: "0.1",
      time_in_force: "gtd", expire_time: "2026-11-24T01:00:00Z", client_order_id: "g1" });
    const [amend, cancel, batched, deadman, placed] = server.requests;
    expect([amend!.method, amend!.path, JSON.parse(amend!.body)]).toEqual(["PATCH", "/api/v1/orders/o1", { quantity: "0.4" }]);
    expect([cancel!.method, cancel!.path]).toEqual(["DELETE", "/api/v1/orders/by-client-id/c-1"]);
    expect(JSON.parse(batched!.body).orders[0]).toMatchObject({ type: "stop_limit", stop_price: "100.50" });
    expect(batch.results.map((r) => r.status)).toEqual([201, 400]);
    expect(batch.results[0]!.order).toEqual(ORDER);
    expect(JSON.parse(deadman!.body)).toEqual({ timeout_ms: 5000 });
    expect(armed.trigger_time).toBe("2026-11-24T00:00:05.000000Z");
    expect(JSON.parse(placed!.body)).toMatchObject({ time_in_force: "gtd", expire_time: "2026-11-24T01:00:00Z" });
    for (const request of server.requests) expect(request.headers.has("X-API-Signature")).toBe(true);
  });

  it("refuses what the contract bounds before sending", async () => {
    const server = fakeServer(() => json(200, ORDER));
    const bourse = client(server.fetch);
    expect(() => bourse.cancelAfter(999)).toThrow(RangeError);
    expect(() => bourse.cancelAfter(600_001)).toThrow(RangeError);
    expect(() => bourse.orders.batch([])).toThrow(RangeError);
    expect(() => bourse.orders.amend("o1", {})).toThrow(TypeError);
    expect(server.requests).toHaveLength(0);
  });

  it("throws the problem of a refused amend as a BourseError", async () => {
    const server = fakeServer(() => problem(409, "order_closed"));
    const error = await client(server.fetch).orders.amend("o1", { price: "99.00" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BourseError);
    expect((error as BourseError).code).toBe("order_closed");
  });
});

describe("errors", () => {
  it("throws a typed BourseError carrying the problem's fields", async () => {
    const server = fakeServer(() => problem(400, "validation_error", {
      errors: [{ field: "price", code: "tick_size", message: "price must be a multiple of 0.01", allowed: "0.01" }],
    }));
    const error = await client(server.fetch).orders.submit({ market: "BTC-USD", side: "buy", type: "limit", price: "1.001", quantity: "1" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BourseError);
    const e = error as BourseError;
    expect([e.status, e.code, e.requestId, e.detail]).toEqual([400, "validation_error", "req-42", "refused: validation_error"]);
    expect(e.errors).toEqual([{ field: "price", code: "tick_size", message: "price must be a multiple of 0.01", allowed: "0.01" }]);
    expect(e.method).toBe("POST");
    expect(e.message).toBe("400 validation_error: refused: validation_error");
  });

  it("exposes extension members and the rate limit of a refusal", async () => {
    const server = fakeServer(() => problem(403, "permission_denied", { required_scope: "trade" }));
    const e = (await client(server.fetch).orders.cancel("o1").catch((x: unknown) => x)) as BourseError;
    expect(e.code).toBe("permission_denied");
    expect(e.extra("required_scope")).toBe("trade");
  });

  it("maps a response that is not a problem document to unexpected_response", async () => {
    const server = fakeServer(() => new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway", headers: { "X-Request-ID": "px" } }));
    const e = (await client(server.fetch, { maxRetries: 0 }).account().catch((x: unknown) => x)) as BourseError;
    expect(e).toBeInstanceOf(BourseError);
    expect([e.status, e.code, e.requestId]).toEqual([502, UNEXPECTED_RESPONSE, "px"]);
  });
});

describe("pagination", () => {
  it("follows next_cursor across pages lazily", async () => {
    const pages: Record<string, { results: { asset: string }[]; next_cursor: string | null }> = {
      "": { results: [{ asset: "BTC" }, { asset: "ETH" }], next_cursor: "c2" },
      c2: { results: [{ asset: "SOL" }], next_cursor: "c3" },
      c3: { results: [{ asset: "USD" }], next_cursor: null },
    };
    const server = fakeServer((seen) => json(200, pages[new URLSearchParams(seen.query).get("cursor") ?? ""]));
    const bourse = client(server.fetch);
    const assets: string[] = [];
    for await (const balance of bourse.balances.list({ limit: 2 })) assets.push(balance.asset);
    expect(assets).toEqual(["BTC", "ETH", "SOL", "USD"]);
    expect(server.requests.map((r) => r.query)).toEqual(["limit=2", "limit=2&cursor=c2", "limit=2&cursor=c3"]);

    server.requests.length = 0;
    expect((await bourse.balances.list().toArray(2)).map((b) => b.asset)).toEqual(["BTC", "ETH"]);
    expect(server.requests).toHaveLength(1); // stopped without fetching a page it did not need
    expect((await bourse.balances.list().page("c3")).results).toEqual([{ asset: "USD" }]);
  });

  it("stops on a repeated cursor instead of looping", async () => {
    const server = fakeServer(() => json(200, { results: [{ asset: "X" }], next_cursor: "same" }));
    await expect(client(server.fetch).balances.list().toArray()).rejects.toThrow(/cursor repeated/);
  });
});

describe("clock-skew correction", () => {
  it("re-syncs from /time on timestamp_out_of_window and retries once with the corrected clock", async () => {
    const skew = 120_000; // the server's clock runs two minutes ahead
    const server = fakeServer((seen) => {
      if (seen.path === "/api/v1/time") return json(200, { server_time: "x", epoch_ms: Date.now() + skew });
      const timestamp = Number(seen.headers.get("X-API-Timestamp"));
      if (Math.abs(Date.now() + skew - timestamp) > 5000) return problem(401, "timestamp_out_of_window", { server_epoch_ms: Date.now() + skew });
      return json(201, ORDER);
    });
    const bourse = client(server.fetch);
    // Idempotent (a client_order_id): re-signed with the corrected clock and sent again.
    const order = await bourse.orders.submit({ market: "BTC-USD", side: "buy", type: "limit", price: "100.00", quantity: "0.5", client_order_id: "c1" });
    expect(order.order_id).toBe("o1");
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /api/v1/orders", "GET /api/v1/time", "POST /api/v1/orders"]);
    expect(Math.abs(bourse.clockOffsetMs - skew)).toBeLessThan(1000);
    expect(server.requests[0]!.headers.get("X-API-Nonce")).not.toBe(server.requests[2]!.headers.get("X-API-Nonce"));
  });

  it("never re-sends an order without client_order_id: corrects the clock and throws the refusal", async () => {
    const skew = 120_000;
    const server = fakeServer((seen) => {
      if (seen.path === "/api/v1/time") return json(200, { server_time: "x", epoch_ms: Date.now() + skew });
      const timestamp = Number(seen.headers.get("X-API-Timestamp"));
      if (Math.abs(Date.now() + skew - timestamp) > 5000) return problem(401, "timestamp_out_of_window", { server_epoch_ms: Date.now() + skew });
      return json(201, ORDER);
    });
    const bourse = client(server.fetch);
    const submit = () => bourse.orders.submit({ market: "BTC-USD", side: "buy", type: "limit", price: "100.00", quantity: "0.5" });
    await expect(submit()).rejects.toMatchObject({ code: "timestamp_out_of_window" });
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /api/v1/orders", "GET /api/v1/time"]);
    // The clock is corrected: the caller's own next call goes through, once.
    expect((await submit()).order_id).toBe("o1");
    expect(server.requests.filter((r) => r.method === "POST")).toHaveLength(2);
  });

  it("gives up after one correction and throws the refusal", async () => {
    const server = fakeServer((seen) => (seen.path === "/api/v1/time"
      ? json(200, { server_time: "x", epoch_ms: Date.now() }) : problem(401, "timestamp_out_of_window")));
    const e = (await client(server.fetch).account().catch((x: unknown) => x)) as BourseError;
    expect(e.code).toBe("timestamp_out_of_window");
    expect(server.requests).toHaveLength(3);
  });

  it("can be switched off", async () => {
    const server = fakeServer(() => problem(401, "timestamp_out_of_window"));
    await expect(client(server.fetch, { correctClockSkew: false }).account()).rejects.toMatchObject({ code: "timestamp_out_of_window" });
    expect(server.requests).toHaveLength(1);
  });
});

describe("retries", () => {
  const flaky = (failures: number, failure: () => Response) =>
    fakeServer((seen, index) => (index < failures ? failure() : json(seen.method === "POST" ? 201 : 200, ORDER)));

  it("retries a GET on 503 and on a network error", async () => {
    const server = flaky(2, () => problem(503, "service_unavailable"));
    expect((await client(server.fetch).orders.get("o1")).order_id).toBe("o1");
    expect(server.requests).toHaveLength(3);

    let calls = 0;
    const dropping = async (request: Request) => (++calls === 1 ? Promise.reject(new TypeError("socket hang up")) : server.fetch(request));
    expect((await client(dropping).orders.get("o1")).order_id).toBe("o1");
    expect(calls).toBe(2);
  });

  it("retries POST /orders only when a client_order_id makes it idempotent", async () => {
    const withId = flaky(1, () => problem(503, "service_unavailable"));
    await client(withId.fetch).orders.submit({ market: "BTC-USD", side: "buy", type: "limit", price: "1", quantity: "1", client_order_id: "c1" });
    expect(withId.requests).toHaveLength(2);

    const withoutId = flaky(1, () => problem(503, "service_unavailable"));
    await expect(client(withoutId.fetch).orders.submit({ market: "BTC-USD", side: "buy", type: "limit", price: "1", quantity: "1" }))
      .rejects.toMatchObject({ status: 503 });
    expect(withoutId.requests).toHaveLength(1);
  });

  it("never retries a cancel", async () => {
    const server = flaky(1, () => problem(503, "service_unavailable"));
    await expect(client(server.fetch).orders.cancel("o1")).rejects.toMatchObject({ code: "service_unavailable" });
    expect(server.requests).toHaveLength(1);
  });

  it("waits Retry-After on 429, up to maxRetryWaitMs", async () => {
    const limited = fakeServer((seen, i) => (i === 0
      ? new Response(JSON.stringify({ code: "rate_limited", status: 429, title: "", detail: "slow down" }), { status: 429, headers: { "Retry-After": "0" } })
      : json(200, ORDER)));
    expect((await client(limited.fetch).orders.get("o1")).order_id).toBe("o1");
    expect(limited.requests).toHaveLength(2);

    const tooLong = fakeServer(() => new Response(JSON.stringify({ code: "rate_limited", status: 429, title: "", detail: "" }), { status: 429, headers: { "Retry-After": "30" } }));
    const e = (await client(tooLong.fetch).orders.get("o1").catch((x: unknown) => x)) as BourseError;
    expect([e.code, e.retryAfterSeconds]).toEqual(["rate_limited", 30]);
    expect(tooLong.requests).toHaveLength(1);
  });

  it("does not retry a refusal that a repeat cannot fix", async () => {
    const server = fakeServer(() => problem(422, "insufficient_balance"));
    await expect(client(server.fetch).orders.get("o1")).rejects.toMatchObject({ code: "insufficient_balance" });
    expect(server.requests).toHaveLength(1);
  });
});

describe("rate-limit information", () => {
  it("parses RateLimit-Policy and RateLimit from the last response", async () => {
    const server = fakeServer(() => json(200, { ...ORDER }, {
      "RateLimit-Policy": '"key";q=1200;w=60, "orders";q=50;w=10', RateLimit: '"key";r=1187;t=41',
    }));
    const bourse = client(server.fetch);
    expect(bourse.rateLimit).toBeNull();
    await bourse.orders.get("o1");
    expect(bourse.rateLimit).toEqual({
      policies: [{ name: "key", quota: 1200, windowSeconds: 60 }, { name: "orders", quota: 50, windowSeconds: 10 }],
      limits: [{ name: "key", remaining: 1187, resetSeconds: 41 }],
      retryAfterSeconds: null,
    });
  });
});

describe("construction", () => {
  it("normalises the base URL and validates options", () => {
    expect(new Bourse({ baseUrl: "http://h:1/api/v1/" }).baseUrl).toBe("http://h:1");
    expect(() => new Bourse({ baseUrl: "http://h", secret: "s" })).toThrow(/key/);
    expect(() => new Bourse({ baseUrl: "http://h", key: "k", secret: "s", windowMs: 0 })).toThrow(/windowMs/);
  });
});
