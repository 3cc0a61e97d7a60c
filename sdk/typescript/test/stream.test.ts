// The WebSocket client against a mock /ws/v1 server (the `ws` package on 127.0.0.1): signed
// auth, replies by id, the local book with gap → resubscribe, private resume with `since`
// after a dropped connection, resync_required, heartbeats, error frames.
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { bookChecksum, BourseError, BourseStream, crc32, createSigner, signRequest, type StreamEvents } from "../src/index.js";

const SECRET = "stream-secret-not-real";
const signer = createSigner({ secret: SECRET });

type Frame = Record<string, unknown>;
type Handler = (socket: WebSocket, message: Frame, connection: number) => void | Promise<void>;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** A mock server: `handler` answers each client message; every message is recorded. */
async function mockServer(handler: Handler) {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const received: { connection: number; message: Frame }[] = [];
  const sockets: WebSocket[] = [];
  let connections = 0;
  server.on("connection", (socket) => {
    const connection = connections++;
    sockets.push(socket);
    socket.on("message", async (data) => {
      const message = JSON.parse(String(data)) as Frame;
      received.push({ connection, message });
      await handler(socket, message, connection);
    });
  });
  const { port } = server.address() as { port: number };
  cleanups.push(() => {
    for (const socket of sockets) socket.terminate();
    server.close();
  });
  return { url: `ws://127.0.0.1:${port}/ws/v1`, received, sockets, connections: () => connections };
}

const send = (socket: WebSocket, frame: Frame) => socket.send(JSON.stringify(frame));

/** Standard replies: auth (checking the signature), ping, unsubscribe. */
async function answerBasics(socket: WebSocket, message: Frame): Promise<boolean> {
  if (message.op === "auth") {
    const expected = await signRequest(signer, {
      timestamp: String(message.timestamp), nonce: String(message.nonce), method: "GET", path: "/ws/v1", query: "", body: "",
    });
    if (expected !== message.signature) send(socket, { type: "error", code: "invalid_credentials", message: "bad signature", id: message.id });
    else send(socket, { type: "auth", id: message.id, key: message.key, account_id: "7" });
    return true;
  }
  if (message.op === "ping") {
    send(socket, { type: "pong", id: message.id });
    return true;
  }
  if (message.op === "unsubscribe") {
    send(socket, { type: "unsubscribed", id: message.id, channels: message.channels });
    return true;
  }
  return false;
}

function stream(url: string, extra: Partial<ConstructorParameters<typeof BourseStream>[0]> = {}) {
  const client = new BourseStream({ url, key: "bk_ws", secret: SECRET, reconnectDelayMs: 10, heartbeatIntervalMs: 0, ...extra });
  cleanups.push(() => client.close());
  return client;
}

/** Resolves with the next `event` whose arguments satisfy `predicate`. */
function next<E extends keyof StreamEvents>(client: BourseStream, event: E, predicate: (...args: StreamEvents[E]) => boolean = () => true) {
  return new Promise<StreamEvents[E]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event`)), 5000);
    const off = client.on(event, (...args) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

const level = (p: string, q: string): [string, string] => [p, q];

describe("BourseStream", () => {
  it("authenticates with a signature over GET /ws/v1 and answers ping", async () => {
    const server = await mockServer(async (socket, message) => { await answerBasics(socket, message); });
    const client = stream(server.url.replace("ws://", "http://").replace("/ws/v1", ""));
    await client.connect();
    expect(client.url).toBe(server.url);
    expect(server.received[0]!.message).toMatchObject({ op: "auth", key: "bk_ws", id: 1 });
    expect(String(server.received[0]!.message.nonce)).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
  });

  it("rejects a request answered by an error frame with a typed BourseError", async () => {
    const server = await mockServer(async (socket, message) => {
      if (await answerBasics(socket, message)) return;
      send(socket, { type: "error", code: "unknown_channel", message: "Unknown channel: book:NOPE.", id: message.id,
        errors: [{ field: "channels", code: "unknown_channel", message: "book:NOPE does not exist." }] });
    });
    const client = stream(server.url);
    await client.connect();
    const error = (await client.subscribe(["book:NOPE"]).catch((e: unknown) => e)) as BourseError;
    expect(error).toBeInstanceOf(BourseError);
    expect([error.code, error.status, error.errors[0]?.field]).toEqual(["unknown_channel", 0, "channels"]);
  });

  it("retries auth once with the server's clock on timestamp_out_of_window", async () => {
    const skew = 90_000;
    const server = await mockServer(async (socket, message) => {
      if (message.op === "auth" && Math.abs(Number(message.timestamp) - (Date.now() + skew)) > 2000) {
        send(socket, { type: "error", code: "timestamp_out_of_window", message: "clock", id: message.id, server_epoch_ms: Date.now() + skew });
        return;
      }
      await answerBasics(socket, message);
    });
    await stream(server.url).connect();
    expect(server.received.filter((r) => r.message.op === "auth")).toHaveLength(2);
  });

  it("keeps a local book from snapshot and updates, and resubscribes on a gap", async () => {
    let snapshots = 0;
    const server = await mockServer(async (socket, message) => {
      if (await answerBasics(socket, message)) return;
      if (message.op !== "subscribe") return;
      const sequence = snapshots++ === 0 ? 10 : 20;
      send(socket, { type: "subscribed", id: message.id, channels: [{ channel: "book:BTC-USD", sequence }] });
      send(socket, { channel: "book:BTC-USD", type: "snapshot", market: "BTC-USD", sequence,
        bids: [level("99.00", "1")], asks: [level(sequence === 10 ? "101.00" : "102.00", "2")] });
      if (sequence === 10) {
        send(socket, { channel: "book:BTC-USD", type: "update", market: "BTC-USD", sequence: 9, bids: [level("1.00", "1")], asks: [] });
        send(socket, { channel: "book:BTC-USD", type: "update", market: "BTC-USD", sequence: 11, bids: [level("99.50", "1")], asks: [] });
        send(socket, { channel: "book:BTC-USD", type: "update", market: "BTC-USD", sequence: 12, bids: [level("99.00", "0")], asks: [] });
        // 13 is lost: 14 must not be applied, and the client asks for a new snapshot.
        send(socket, { channel: "book:BTC-USD", type: "update", market: "BTC-USD", sequence: 14, bids: [level("50.00", "1")], asks: [] });
      }
    });
    const client = stream(server.url);
    await client.connect();
    const applied = next(client, "book", (book) => book.sequence === 12);
    const gap = next(client, "gap");
    const rebuilt = next(client, "book", (book) => book.sequence === 20);
    await client.subscribe(["book:BTC-USD"]);
    const [afterUpdates] = await applied;
    expect(afterUpdates.bids()).toEqual([["99.50", "1"]]);
    expect((await gap)[0]).toEqual({ channel: "book:BTC-USD", expected: 13, received: 14 });
    const [book] = await rebuilt;
    expect(book.bids()).toEqual([["99.00", "1"]]);
    expect(book.asks()).toEqual([["102.00", "2"]]);
    expect(client.book("BTC-USD")).toBe(book);
    expect(server.received.map((r) => r.message.op)).toEqual(["auth", "subscribe", "unsubscribe", "subscribe"]);
  });

  it("verifies every book frame's checksum and resubscribes on a mismatch", async () => {
    let snapshots = 0;
    const server = await mockServer(async (socket, message) => {
      if (await answerBasics(socket, message)) return;
      if (message.op !== "subscribe") return;
      const first = snapshots++ === 0;
      const sequence = first ? 10 : 20;
      const bids = [level("99.00", "1")];
      const asks = [level("101.00", "2")];
      send(socket, { type: "subscribed", id: message.id, channels: [{ channel: "book:BTC-USD", sequence }] });
      send(socket, { channel: "book:BTC-USD", type: "snapshot", market: "BTC-USD", sequence, bids, asks,
        checksum: bookChecksum(bids, asks) });
      if (first) {
        // a correct update, then one whose checksum says the server's book differs
        send(socket, { channel: "book:BTC-USD", type: "update", market: "BTC-USD", sequence: 11, bids: [level("99.50", "3")],
          asks: [], checksum: crc32("99.50:3:101.00:2:99.00:1") });
        send(socket, { channel: "book:BTC-USD", type: "update", market: "BTC-USD", sequence: 12, bids: [level("99.50", "0")],
          asks: [], checksum: crc32("99.50:3:101.00:2:99.00:1") });
      }
    });
    const client = stream(server.url);
    await client.connect();
    let bidsAt11: [string, string][] = [];
    const applied = next(client, "book", (book) => book.sequence === 11 && (bidsAt11 = book.bids()).length > 0);
    const mismatch = next(client, "checksum");
    const rebuilt = next(client, "book", (book) => book.sequence === 20);
    await client.subscribe(["book:BTC-USD"]);
    await applied;
    expect(bidsAt11).toEqual([["99.50", "3"], ["99.00", "1"]]);
    expect((await mismatch)[0]).toEqual({
      channel: "book:BTC-USD", sequence: 12, expected: crc32("99.50:3:101.00:2:99.00:1"), computed: crc32("99.00:1:101.00:2"),
    });
    const [book] = await rebuilt;
    expect(book.checksum()).toBe(bookChecksum([level("99.00", "1")], [level("101.00", "2")]));
    expect(server.received.map((r) => r.message.op)).toEqual(["auth", "subscribe", "unsubscribe", "subscribe"]);
  });

  it("enters orders over the socket with cancel_on_disconnect and maps error frames", async () => {
    const order = { order_id: "9", status: "open" };
    const server = await mockServer(async (socket, message) => {
      if (await answerBasics(socket, message)) return;
      if (message.op === "place_order") {
        if (message.price === "1.001") {
          send(socket, { type: "error", code: "validation_error", message: "tick", id: message.id,
            errors: [{ field: "price", code: "tick_size", message: "tick" }] });
        } else send(socket, { type: "order", id: message.id, order });
      }
      if (message.op === "amend_order" || message.op === "cancel_order") send(socket, { type: "order", id: message.id, order });
      if (message.op === "cancel_all") send(socket, { type: "cancel_all", id: message.id, cancelled: ["9"] });
      if (message.op === "cancel_after") {
        send(socket, { type: "cancel_after", id: message.id, current_time: "t0", trigger_time: null });
      }
    });
    const client = stream(server.url, { cancelOnDisconnect: true });
    await client.connect();
    expect(await client.placeOrder({ market: "BTC-USD", side: "buy", type: "limit", price: "100.00", quantity: "1" })).toEqual(order);
    const refused = await client.placeOrder({ market: "BTC-USD", side: "buy", type: "limit", price: "1.001", quantity: "1" })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BourseError);
    expect((refused as BourseError).code).toBe("validation_error");
    expect(await client.amendOrder("9", { quantity: "0.5" })).toEqual(order);
    expect(await client.cancelOrder({ client_order_id: "c1" })).toEqual(order);
    expect(await client.cancelAll("BTC-USD")).toEqual(["9"]);
    expect(await client.cancelAfter(0)).toEqual({ current_time: "t0", trigger_time: null });
    const ops = server.received.map((r) => r.message);
    expect(ops[0]).toMatchObject({ op: "auth", cancel_on_disconnect: true });
    expect(ops.slice(1).map((m) => m.op)).toEqual(
      ["place_order", "place_order", "amend_order", "cancel_order", "cancel_all", "cancel_after"]);
    expect(ops[3]).toMatchObject({ order_id: "9", quantity: "0.5" });
    expect(ops[4]).toMatchObject({ client_order_id: "c1" });
    expect(ops[5]).toMatchObject({ market: "BTC-USD" });
    expect(ops[6]).toMatchObject({ timeout_ms: 0 });
  });

  it("emits candle frames", async () => {
    const bar = { open_time: "2026-11-23T18:00:00.000000Z", open: "1.00", high: "1.00", low: "1.00", close: "1.00",
      volume: "1.0", quote_volume: "1.00", trades: 1 };
    const server = await mockServer(async (socket, message) => {
      if (await answerBasics(socket, message)) return;
      if (message.op !== "subscribe") return;
      send(socket, { type: "subscribed", id: message.id, channels: [{ channel: "candles:BTC-USD:1m", sequence: null }] });
      send(socket, { channel: "candles:BTC-USD:1m", type: "candle", data: bar });
    });
    const client = stream(server.url);
    await client.connect();
    const candle = next(client, "candle");
    await client.subscribe(["candles:BTC-USD:1m"]);
    expect((await candle)[0]).toEqual({ channel: "candles:BTC-USD:1m", type: "candle", data: bar });
  });

  it("resumes private streams with since after a dropped connection, without duplicates", async () => {
    const order = (sequence: number) => ({ channel: "orders", type: "order", sequence, data: { order_id: `o${sequence}` } });
    const server = await mockServer(async (socket, message, connection) => {
      if (await answerBasics(socket, message)) return;
      if (message.op !== "subscribe") return;
      if (connection === 0) {
        send(socket, { type: "subscribed", id: message.id, channels: [{ channel: "orders", sequence: 5 }] });
        send(socket, order(6));
        send(socket, order(7));
      } else {
        // The replay overlaps what the client had (7) and adds what it missed (8, 9).
        send(socket, { type: "subscribed", id: message.id, channels: [{ channel: "orders", sequence: 9 }] });
        for (const sequence of [7, 8, 9]) send(socket, order(sequence));
      }
    });
    const client = stream(server.url);
    const seen: number[] = [];
    client.on("order", (frame) => seen.push(frame.sequence));
    await client.connect();
    const seventh = next(client, "order", (frame) => frame.sequence === 7);
    await client.subscribe(["orders"]);
    await seventh;
    const reopened = next(client, "open");
    const ninth = next(client, "order", (frame) => frame.sequence === 9);
    server.sockets[0]!.terminate(); // the network drops the connection
    expect((await reopened)[0]).toEqual({ reconnected: true });
    await ninth;
    expect(seen).toEqual([6, 7, 8, 9]);
    const resume = server.received.find((r) => r.connection === 1 && r.message.op === "subscribe")!.message;
    expect(resume).toMatchObject({ channels: ["orders"], since: { orders: 7 } });
    expect(server.received.filter((r) => r.connection === 1).map((r) => r.message.op)).toEqual(["auth", "subscribe"]);
    expect(client.lastSequence("orders")).toBe(9);
  });

  it("starts over and tells the application when the server cannot replay", async () => {
    const server = await mockServer(async (socket, message, connection) => {
      if (await answerBasics(socket, message)) return;
      if (message.op !== "subscribe") return;
      if (connection === 1 && message.since) {
        send(socket, { type: "error", code: "resync_required", message: "too old", id: message.id, channel: "fills" });
        return;
      }
      send(socket, { type: "subscribed", id: message.id, channels: [{ channel: "fills", sequence: connection === 0 ? 3 : 500 }] });
    });
    const client = stream(server.url);
    await client.connect();
    await client.subscribe(["fills"]);
    expect(client.lastSequence("fills")).toBe(3);
    const resync = next(client, "resync");
    const reopened = next(client, "open");
    client.reconnect();
    expect((await resync)[0]).toEqual({ channel: "fills" });
    await reopened;
    expect(client.lastSequence("fills")).toBe(500);
  });

  it("reconnects when heartbeats go unanswered", async () => {
    const server = await mockServer(async (socket, message, connection) => {
      if (message.op === "ping" && connection === 0) return; // a half-dead connection
      await answerBasics(socket, message);
    });
    const client = stream(server.url, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 50 });
    await client.connect();
    const [info] = await next(client, "open");
    expect(info.reconnected).toBe(true);
    expect(server.connections()).toBeGreaterThanOrEqual(2);
  });

  it("does not reconnect after close()", async () => {
    const server = await mockServer(async (socket, message) => { await answerBasics(socket, message); });
    const client = stream(server.url);
    await client.connect();
    const closed = next(client, "close");
    client.close();
    expect((await closed)[0].willReconnect).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.connections()).toBe(1);
  });
  it("stops reconnecting when the server closes the connection because of the key (4401)", async () => {
    const server = await mockServer(async (socket, message) => { await answerBasics(socket, message); });
    const client = stream(server.url);
    await client.connect();
    const error = next(client, "error");
    const closed = next(client, "close");
    send(server.sockets[0]!, { type: "error", code: "key_revoked", message: "API key bk_ws was revoked.", id: null });
    server.sockets[0]!.close(4401, "key_revoked");
    expect((await error)[0].code).toBe("key_revoked");
    expect((await closed)[0]).toMatchObject({ code: 4401, reason: "key_revoked", willReconnect: false });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.connections()).toBe(1);
    expect(client.refused?.code).toBe("key_revoked");
  });

  it("surfaces the close reason as the error when no error frame came first (4403)", async () => {
    const server = await mockServer(async (socket, message) => { await answerBasics(socket, message); });
    const client = stream(server.url);
    await client.connect();
    const error = next(client, "error");
    server.sockets[0]!.close(4403, "owner_deactivated");
    expect((await error)[0]).toBeInstanceOf(BourseError);
    expect(client.refused?.code).toBe("owner_deactivated");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.connections()).toBe(1);
  });

  for (const code of ["key_revoked", "key_expired", "invalid_credentials", "permission_denied"]) {
    it(`stops reconnecting when a reconnect's auth is refused with ${code}`, async () => {
      const server = await mockServer(async (socket, message, connection) => {
        if (message.op === "auth" && connection > 0) {
          send(socket, { type: "error", code, message: "refused", id: message.id });
          return;
        }
        await answerBasics(socket, message);
      });
      const client = stream(server.url);
      await client.connect();
      const error = next(client, "error");
      server.sockets[0]!.terminate(); // a network drop: the stream reconnects, and is refused
      expect((await error)[0].code).toBe(code);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(server.connections()).toBe(2);
      expect(client.refused?.code).toBe(code);
      expect(client.connected).toBe(false);
    });
  }

  it("keeps reconnecting after a transient refusal (rate_limited)", async () => {
    const server = await mockServer(async (socket, message, connection) => {
      if (message.op === "auth" && connection === 1) {
        send(socket, { type: "error", code: "rate_limited", message: "slow down", id: message.id, retry_after: 1 });
        return;
      }
      await answerBasics(socket, message);
    });
    const client = stream(server.url);
    await client.connect();
    const reopened = next(client, "open");
    server.sockets[0]!.terminate();
    expect((await reopened)[0]).toEqual({ reconnected: true });
    expect(server.connections()).toBe(3);
    expect(client.refused).toBeUndefined();
  });
});
