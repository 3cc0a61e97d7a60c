/**
 * The WebSocket client for `/ws/v1`: signed `auth`, subscribe/unsubscribe with replies matched
 * by `id`, a maintained local order book per `book:{symbol}` verified against every frame's
 * `checksum` (resubscribed on a sequence gap or a checksum mismatch),
 * private streams resumed with `since` after a reconnect, heartbeats, and typed events.
 *
 * Browsers and Node 22+ have a global WebSocket; on Node 20 the `ws` package is used.
 */
import { LocalOrderBook, type BookLevel } from "./book.js";
import { BourseError } from "./errors.js";
import { createSigner, signedHeaders, type Signer } from "./signing.js";
import { checkCancelAfterTimeout, type CancelAfterResult, type OrderAmend, type OrderRequest } from "./orderentry.js";
import type { Balance, Candle, CandleInterval, Fill, Order, Ticker, Trade } from "./types.js";

export type PrivateChannel = "orders" | "fills" | "balances";
export type Channel =
  | `book:${string}` | `trades:${string}` | `ticker:${string}` | `candles:${string}:${CandleInterval}` | PrivateChannel;
const PRIVATE: readonly string[] = ["orders", "fills", "balances"];

export interface BookFrame {
  channel: `book:${string}`;
  type: "snapshot" | "update";
  market: string;
  sequence: number;
  bids: BookLevel[];
  asks: BookLevel[];
  /** CRC32 of the top 25 levels after this frame (docs/websocket.md). */
  checksum: number;
}
export interface CandleFrame { channel: `candles:${string}:${CandleInterval}`; type: "candle"; data: Candle }
export interface TradeFrame { channel: `trades:${string}`; type: "trade"; data: Trade }
export interface TickerFrame { channel: `ticker:${string}`; type: "ticker"; data: Ticker }
export interface OrderFrame { channel: "orders"; type: "order"; sequence: number; data: Order }
export interface FillFrame { channel: "fills"; type: "fill"; sequence: number; data: Fill }
export interface BalanceFrame { channel: "balances"; type: "balance"; sequence: number; data: Balance }
export type PrivateFrame = OrderFrame | FillFrame | BalanceFrame;

/** Typed events of a stream; `on(name, listener)` returns the function that removes it. */
export interface StreamEvents {
  /** Connected and (with credentials) authenticated; `reconnected` after a lost connection. */
  open: [info: { reconnected: boolean }];
  close: [info: { code: number; reason: string; willReconnect: boolean }];
  /** The local book after a snapshot or an applied update. */
  book: [book: LocalOrderBook, frame: BookFrame];
  /** Each trade, in `trade_id` order. */
  trade: [frame: TradeFrame];
  /** The bar the latest trades changed; one with a known `open_time` replaces it. */
  candle: [frame: CandleFrame];
  ticker: [frame: TickerFrame];
  order: [frame: OrderFrame];
  fill: [frame: FillFrame];
  balance: [frame: BalanceFrame];
  /** A sequence gap was seen on `channel`; the client is resubscribing. */
  gap: [info: { channel: string; expected: number; received: number }];
  /**
   * The local book disagreed with a frame's `checksum` after applying it (`computed` is the
   * local book's); the client is resubscribing for a fresh snapshot.
   */
  checksum: [info: { channel: string; sequence: number; expected: number; computed: number }];
  /** The server could not replay what was missed: re-read this channel's state over REST. */
  resync: [info: { channel: string }];
  /** An error frame that answers no request of ours, or a failed automatic resubscription. */
  error: [error: BourseError];
}

/** The constructor shape shared by the browser WebSocket and the `ws` package. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketFactory = new (url: string) => WebSocketLike;

export interface BourseStreamOptions {
  /** `ws://host:port/ws/v1`, or the REST origin (`http://host:port`), from which it is derived. */
  url: string;
  key?: string;
  secret?: string;
  privateKey?: string | Uint8Array;
  /** A WebSocket implementation; default the global one, else the `ws` package. */
  WebSocket?: WebSocketFactory;
  /** Reconnect after a lost connection. Default true. */
  reconnect?: boolean;
  /** First reconnect delay, doubled per failed attempt up to `maxReconnectDelayMs`. Default 250. */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** Ping every this many ms; 0 disables heartbeats. Default 15000. */
  heartbeatIntervalMs?: number;
  /** A pong later than this (ms) counts the connection dead. Default 10000. */
  heartbeatTimeoutMs?: number;
  /** Replies later than this (ms) reject the request. Default 10000. */
  requestTimeoutMs?: number;
  /** Server minus local clock in ms, e.g. `client.clockOffsetMs` from the REST client. */
  clockOffsetMs?: number;
  /**
   * Sent with `auth`: when this connection ends, the server cancels every open order of the
   * account (`cancel_reason` `disconnect`). Needs a key with scope `trade`. Default false.
   */
  cancelOnDisconnect?: boolean;
}

interface Pending {
  /** Runs synchronously on the reply, before any later frame is handled. */
  onReply: ((frame: Record<string, unknown>) => void) | undefined;
  resolve: (frame: Record<string, unknown>) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
type Listener = (...args: unknown[]) => void;
// A variable specifier keeps browser bundlers away from the Node-only fallback.
const WS_PACKAGE = "ws";

/**
 * Refusals that a new connection with the same credentials would get again: the stream stops
 * reconnecting, emits the error and closes for good. The server also closes a live connection
 * whose key was revoked, expired, lost `read`, excludes its address or whose owner was
 * deactivated with 4401 / 4403 (docs/websocket.md).
 */
export const PERMANENT_REFUSALS: readonly string[] = [
  "key_revoked", "key_expired", "invalid_credentials", "permission_denied", "owner_deactivated", "ip_not_allowed",
];
const KEY_CLOSE_CODES: readonly number[] = [4401, 4403];

function isPermanent(error: unknown): error is BourseError {
  return error instanceof BourseError && PERMANENT_REFUSALS.includes(error.code);
}

function streamUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (!parsed.pathname.endsWith("/ws/v1")) parsed.pathname = "/ws/v1";
  return parsed.toString();
}

function wsError(frame: Record<string, unknown>): BourseError {
  return new BourseError({
    status: 0, // not HTTP: a WebSocket error frame
    code: typeof frame.code === "string" ? frame.code : "unexpected_response",
    title: "WebSocket error",
    detail: typeof frame.message === "string" ? frame.message : JSON.stringify(frame),
    errors: Array.isArray(frame.errors) ? (frame.errors as BourseError["errors"]) : [],
    body: frame,
    path: "/ws/v1",
  });
}

export class BourseStream {
  readonly url: string;
  readonly #keyId: string | undefined;
  readonly #signer: Signer | undefined;
  readonly #options: Required<Omit<BourseStreamOptions, "url" | "key" | "secret" | "privateKey" | "WebSocket" | "clockOffsetMs">>;
  readonly #factory: WebSocketFactory | undefined;
  #clockOffsetMs: number;

  #socket: WebSocketLike | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Map<keyof StreamEvents, Set<Listener>>();
  /** Channels the application asked for: restored after every reconnect. */
  readonly #wanted = new Set<string>();
  /** Last sequence seen per private channel: the `since` of a resumption. */
  readonly #lastPrivate = new Map<string, number>();
  readonly #books = new Map<string, LocalOrderBook>();
  /** Book channels waiting for a fresh snapshot after a gap. */
  readonly #resyncing = new Set<string>();
  #closedByUser = false;
  #connected = false;
  #everConnected = false;
  /** A permanent refusal: no more reconnects (see `PERMANENT_REFUSALS`). */
  #refused: BourseError | undefined;
  #reconnectAttempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;

  constructor(options: BourseStreamOptions) {
    this.url = streamUrl(options.url);
    this.#keyId = options.key;
    if (options.secret !== undefined || options.privateKey !== undefined) {
      if (!options.key) throw new TypeError("key (the API key id) is required with a secret or privateKey");
      this.#signer = createSigner({ secret: options.secret, privateKey: options.privateKey });
    }
    this.#factory = options.WebSocket;
    this.#clockOffsetMs = options.clockOffsetMs ?? 0;
    this.#options = {
      reconnect: options.reconnect ?? true,
      reconnectDelayMs: options.reconnectDelayMs ?? 250,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? 10_000,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 15_000,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      cancelOnDisconnect: options.cancelOnDisconnect ?? false,
    };
  }

  // ---- events ---------------------------------------------------------------------------

  on<E extends keyof StreamEvents>(event: E, listener: (...args: StreamEvents[E]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as unknown as Listener);
    return () => set.delete(listener as unknown as Listener);
  }

  #emit<E extends keyof StreamEvents>(event: E, ...args: StreamEvents[E]): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        listener(...(args as unknown[]));
      } catch (error) {
        // A listener's bug must not break the stream's bookkeeping.
        queueMicrotask(() => { throw error; });
      }
    }
  }

  // ---- state ----------------------------------------------------------------------------

  /** The local book of a subscribed `book:{symbol}` channel (symbol or channel name). */
  book(symbolOrChannel: string): LocalOrderBook | undefined {
    return this.#books.get(symbolOrChannel.startsWith("book:") ? symbolOrChannel : `book:${symbolOrChannel}`);
  }

  /** Last sequence received on a private channel (the `since` a reconnect resumes from). */
  lastSequence(channel: PrivateChannel): number | undefined {
    return this.#lastPrivate.get(channel);
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** The permanent refusal that stopped this stream (no reconnects after it), if any. */
  get refused(): BourseError | undefined {
    return this.#refused;
  }

  // ---- connection -----------------------------------------------------------------------

  /** Opens the connection and authenticates (when credentials were given). */
  async connect(): Promise<void> {
    this.#closedByUser = false;
    this.#refused = undefined;
    await this.#open(false);
  }

  /** Closes for good: no reconnect, pending requests rejected. */
  close(): void {
    this.#closedByUser = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#stopHeartbeat();
    this.#socket?.close(1000, "client closed");
    this.#failPending(new Error("stream closed"));
  }

  /**
   * Drops the connection abruptly (no close handshake) and lets the normal reconnect path
   * resume every subscription: what a network failure does, on demand.
   */
  reconnect(): void {
    const socket = this.#socket as (WebSocketLike & { terminate?: () => void }) | undefined;
    if (socket?.terminate) socket.terminate();
    else socket?.close(4000, "client reconnect");
  }

  async #factoryFor(): Promise<WebSocketFactory> {
    if (this.#factory) return this.#factory;
    const global = (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (global) return global;
    const module = (await import(/* @vite-ignore */ WS_PACKAGE)) as { WebSocket?: WebSocketFactory; default?: WebSocketFactory };
    const factory = module.WebSocket ?? module.default;
    if (!factory) throw new Error("no WebSocket implementation: install the `ws` package or pass options.WebSocket");
    return factory;
  }

  async #open(reconnected: boolean): Promise<void> {
    const Factory = await this.#factoryFor();
    const socket = new Factory(this.url);
    this.#socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => undefined; // the close that follows carries the outcome
      socket.onclose = (event) => reject(new Error(`WebSocket ${this.url} closed before opening (${event.code})`));
    });
    socket.onmessage = (event) => this.#onMessage(event.data);
    socket.onclose = (event) => this.#onClose(socket, event.code, event.reason);
    this.#connected = true;
    this.#startHeartbeat();
    try {
      if (this.#signer) await this.#authenticate();
      if (reconnected) await this.#restore();
    } catch (error) {
      if (isPermanent(error)) this.#refused = error; // before the close: it must not reconnect
      socket.close(1000, "setup failed");
      throw error;
    }
    this.#reconnectAttempt = 0;
    this.#everConnected = true;
    this.#emit("open", { reconnected });
  }

  async #authenticate(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const headers = await signedHeaders(this.#keyId ?? "", this.#signer!, {
        method: "GET", path: "/ws/v1", query: "", body: "", timestamp: Date.now() + this.#clockOffsetMs,
      });
      try {
        await this.#request({
          op: "auth", key: headers["X-API-Key"], timestamp: headers["X-API-Timestamp"],
          nonce: headers["X-API-Nonce"], signature: headers["X-API-Signature"],
          ...(this.#options.cancelOnDisconnect ? { cancel_on_disconnect: true } : {}),
        });
        return;
      } catch (error) {
        // Same clock correction as REST: the refusal names the server's time.
        const serverMs = error instanceof BourseError ? error.extra("server_epoch_ms") : undefined;
        if (attempt === 0 && error instanceof BourseError && error.code === "timestamp_out_of_window" && typeof serverMs === "number") {
          this.#clockOffsetMs = serverMs - Date.now();
          continue;
        }
        throw error;
      }
    }
  }

  /** After a reconnect: public channels afresh, private ones from their last sequence. */
  async #restore(): Promise<void> {
    const publicChannels = [...this.#wanted].filter((c) => !PRIVATE.includes(c));
    const privateChannels = [...this.#wanted].filter((c) => PRIVATE.includes(c));
    for (const channel of publicChannels) if (channel.startsWith("book:")) this.#resyncing.add(channel);
    if (publicChannels.length) await this.#subscribeOp(publicChannels, undefined);
    if (privateChannels.length) await this.#resumePrivate(privateChannels);
  }

  async #resumePrivate(channels: string[]): Promise<void> {
    const since: Record<string, number> = {};
    const fresh: string[] = [];
    for (const channel of channels) {
      const last = this.#lastPrivate.get(channel);
      if (last === undefined) fresh.push(channel);
      else since[channel] = last;
    }
    if (Object.keys(since).length) {
      try {
        await this.#subscribeOp(Object.keys(since), since);
      } catch (error) {
        if (!(error instanceof BourseError && error.code === "resync_required")) throw error;
        // Too far behind to replay: start from now and tell the application to re-read.
        for (const channel of Object.keys(since)) {
          this.#lastPrivate.delete(channel);
          this.#emit("resync", { channel });
        }
        fresh.push(...Object.keys(since));
      }
    }
    if (fresh.length) await this.#subscribeOp(fresh, undefined);
  }

  #onClose(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#connected = false;
    this.#stopHeartbeat();
    this.#failPending(new Error(`connection closed (${code})`));
    if (!this.#refused && KEY_CLOSE_CODES.includes(code)) {
      // Closed by the server because of the key: surface why, never reconnect.
      this.#refused = wsError({ type: "error", code: reason || "key_revoked", message: `closed by the server (${code} ${reason})` });
      this.#emit("error", this.#refused);
    }
    const willReconnect = !this.#refused && !this.#closedByUser && this.#options.reconnect && this.#everConnected;
    this.#emit("close", { code, reason, willReconnect });
    if (willReconnect) this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    // One pending attempt at a time: a failed attempt may be reported both by its own close
    // and by the error of the set-up that was running when it closed.
    if (this.#reconnectTimer !== undefined) return;
    const delay = Math.min(this.#options.reconnectDelayMs * 2 ** this.#reconnectAttempt, this.#options.maxReconnectDelayMs);
    this.#reconnectAttempt++;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#closedByUser) return;
      this.#open(true).catch((error: unknown) => {
        if (error instanceof BourseError) this.#emit("error", error);
        // A socket that opened and then failed reconnects via its own close; one that never
        // opened has no close handler left, so schedule the next attempt here. A permanent
        // refusal (revoked key, wrong secret...) ends the stream: retrying cannot succeed.
        if (!this.#connected && !this.#closedByUser && !this.#refused) this.#scheduleReconnect();
      });
    }, delay);
  }

  #failPending(error: unknown): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.#pending.delete(id);
    }
  }

  #startHeartbeat(): void {
    this.#stopHeartbeat();
    if (this.#options.heartbeatIntervalMs <= 0) return;
    this.#heartbeatTimer = setInterval(() => {
      this.ping(this.#options.heartbeatTimeoutMs).catch(() => {
        // No pong in time: treat the connection as dead and go through the reconnect path.
        if (this.#connected) this.reconnect();
      });
    }, this.#options.heartbeatIntervalMs);
  }

  #stopHeartbeat(): void {
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
  }

  // ---- requests -------------------------------------------------------------------------

  #request(
    message: Record<string, unknown>,
    timeoutMs = this.#options.requestTimeoutMs,
    onReply?: (frame: Record<string, unknown>) => void,
  ): Promise<Record<string, unknown>> {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return Promise.reject(new Error("not connected: call connect() first"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no reply to ${String(message.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { onReply, resolve, reject, timer });
      socket.send(JSON.stringify({ ...message, id }));
    });
  }

  /** Round trip of a `ping` in ms. */
  async ping(timeoutMs?: number): Promise<number> {
    const started = Date.now();
    await this.#request({ op: "ping" }, timeoutMs);
    return Date.now() - started;
  }

  /**
   * Subscribes to channels. `since` (private channels) replays the events after that
   * sequence: one number for every private channel listed, or one per channel.
   * Resolves with each channel's starting sequence.
   */
  async subscribe(channels: Channel[], options: { since?: number | Partial<Record<PrivateChannel, number>> } = {}): Promise<{ channel: string; sequence: number | null }[]> {
    let since: Record<string, number> | undefined;
    if (options.since !== undefined) {
      since = typeof options.since === "number"
        ? Object.fromEntries(channels.filter((c) => PRIVATE.includes(c)).map((c) => [c, options.since as number]))
        : (options.since as Record<string, number>);
    }
    const reply = await this.#subscribeOp(channels, since);
    for (const channel of channels) this.#wanted.add(channel);
    return reply;
  }

  async #subscribeOp(channels: string[], since: Record<string, number> | undefined): Promise<{ channel: string; sequence: number | null }[]> {
    // Sequences at or below `since` are what the replay will send: start counting there.
    for (const [channel, sequence] of Object.entries(since ?? {})) this.#lastPrivate.set(channel, sequence);
    let started: { channel: string; sequence: number | null }[] = [];
    // The stream's frames follow the reply at once: record where each starts before them.
    await this.#request({ op: "subscribe", channels, ...(since ? { since } : {}) }, undefined, (reply) => {
      started = (reply.channels ?? []) as typeof started;
      for (const { channel, sequence } of started) {
        if (PRIVATE.includes(channel) && !(since && channel in since) && typeof sequence === "number") {
          this.#lastPrivate.set(channel, sequence);
        }
      }
    });
    return started;
  }

  /** Unsubscribes; a book's local copy is dropped, a private channel's position forgotten. */
  async unsubscribe(channels: Channel[]): Promise<string[]> {
    for (const channel of channels) this.#wanted.delete(channel);
    const reply = await this.#request({ op: "unsubscribe", channels });
    for (const channel of channels) {
      this.#books.delete(channel);
      this.#lastPrivate.delete(channel);
    }
    return (reply.channels ?? []) as string[];
  }

  // ---- order entry (after auth with a `trade` key) -----------------------------------------
  // Each op is answered by its own reply (or an error frame with the REST code, thrown as a
  // BourseError). None is re-sent by the client: a lost reply leaves the outcome unknown, so
  // look the order up (by `client_order_id`) before placing it again.

  /** `place_order`: the `POST /orders` body; resolves with the order as the engine left it. */
  async placeOrder(order: OrderRequest): Promise<Order> {
    return (await this.#request({ op: "place_order", ...order })).order as Order;
  }

  /** `amend_order`: amend in place (API.md); resolves with the amended order. */
  async amendOrder(orderId: string, changes: OrderAmend): Promise<Order> {
    return (await this.#request({ op: "amend_order", order_id: orderId, ...changes })).order as Order;
  }

  /** `cancel_order` by `order_id` or `client_order_id` (exactly one). */
  async cancelOrder(which: { order_id: string } | { client_order_id: string }): Promise<Order> {
    return (await this.#request({ op: "cancel_order", ...which })).order as Order;
  }

  /** `cancel_all`, optionally in one market: resolves with the ids of the cancelled orders. */
  async cancelAll(market?: string): Promise<string[]> {
    return (await this.#request({ op: "cancel_all", ...(market ? { market } : {}) })).cancelled as string[];
  }

  /** `cancel_after`: arm (0: disarm) the key's dead-man switch, as `POST /cancel-after`. */
  async cancelAfter(timeoutMs: number): Promise<CancelAfterResult> {
    checkCancelAfterTimeout(timeoutMs);
    const reply = await this.#request({ op: "cancel_after", timeout_ms: timeoutMs });
    return { current_time: reply.current_time as string, trigger_time: (reply.trigger_time ?? null) as string | null };
  }

  // ---- inbound --------------------------------------------------------------------------

  #onMessage(data: unknown): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer)) as Record<string, unknown>;
    } catch {
      return; // not JSON: nothing the protocol sends
    }
    const id = typeof frame.id === "number" ? frame.id : undefined;
    const pending = id === undefined ? undefined : this.#pending.get(id);
    if (pending && id !== undefined) {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      if (frame.type === "error") pending.reject(wsError(frame));
      else {
        pending.onReply?.(frame);
        pending.resolve(frame);
      }
      return;
    }
    if (frame.type === "error") {
      if (frame.code === "resync_required" && typeof frame.channel === "string") this.#onResyncRequired(frame.channel);
      else {
        const error = wsError(frame);
        if (isPermanent(error)) this.#refused = error; // the server closes next: do not reconnect
        this.#emit("error", error);
      }
      return;
    }
    const channel = typeof frame.channel === "string" ? frame.channel : "";
    if (channel.startsWith("book:")) this.#onBook(frame as unknown as BookFrame);
    else if (frame.type === "trade") this.#emit("trade", frame as unknown as TradeFrame);
    else if (frame.type === "candle") this.#emit("candle", frame as unknown as CandleFrame);
    else if (frame.type === "ticker") this.#emit("ticker", frame as unknown as TickerFrame);
    else if (PRIVATE.includes(channel)) this.#onPrivate(frame as unknown as PrivateFrame);
  }

  #onBook(frame: BookFrame): void {
    if (frame.type === "snapshot") {
      this.#resyncing.delete(frame.channel);
      const book = new LocalOrderBook(frame);
      if (!book.verify(frame)) {
        this.#checksumMismatch(frame, book);
        return;
      }
      this.#books.set(frame.channel, book);
      this.#emit("book", book, frame);
      return;
    }
    const book = this.#books.get(frame.channel);
    if (!book || this.#resyncing.has(frame.channel)) return; // a new snapshot is on its way
    const result = book.apply(frame);
    if (result === "applied") this.#emit("book", book, frame);
    else if (result === "checksum_mismatch") {
      this.#books.delete(frame.channel);
      this.#checksumMismatch(frame, book);
    } else if (result === "gap") {
      this.#emit("gap", { channel: frame.channel, expected: book.sequence + 1, received: frame.sequence });
      this.#resubscribe(frame.channel);
    }
  }

  #checksumMismatch(frame: BookFrame, book: LocalOrderBook): void {
    this.#emit("checksum", { channel: frame.channel, sequence: frame.sequence, expected: frame.checksum, computed: book.checksum() });
    this.#resubscribe(frame.channel);
  }

  #onPrivate(frame: PrivateFrame): void {
    const last = this.#lastPrivate.get(frame.channel);
    if (last !== undefined && frame.sequence <= last) return; // already delivered (replay overlap)
    if (last !== undefined && frame.sequence !== last + 1) {
      this.#emit("gap", { channel: frame.channel, expected: last + 1, received: frame.sequence });
      this.#resubscribe(frame.channel);
      return;
    }
    this.#lastPrivate.set(frame.channel, frame.sequence);
    if (frame.type === "order") this.#emit("order", frame);
    else if (frame.type === "fill") this.#emit("fill", frame);
    else this.#emit("balance", frame);
  }

  #onResyncRequired(channel: string): void {
    // The server dropped the channel; a book re-snapshots, a private stream starts over.
    if (PRIVATE.includes(channel)) {
      this.#lastPrivate.delete(channel);
      this.#emit("resync", { channel });
    }
    this.#resubscribe(channel, true);
  }

  /** Resubscribes one channel: a book gets a fresh snapshot, a private stream replays. */
  #resubscribe(channel: string, serverDropped = false): void {
    if (channel.startsWith("book:")) {
      if (this.#resyncing.has(channel)) return;
      this.#resyncing.add(channel);
    }
    const run = async () => {
      if (!serverDropped) await this.#request({ op: "unsubscribe", channels: [channel] });
      if (PRIVATE.includes(channel)) await this.#resumePrivate([channel]);
      else await this.#subscribeOp([channel], undefined);
    };
    run().catch((error: unknown) => {
      this.#resyncing.delete(channel);
      if (error instanceof BourseError) this.#emit("error", error);
      else if (this.#connected) this.reconnect(); // cannot resync in place: start over
    });
  }
}
