/**
 * The REST client: `new Bourse({ baseUrl, key, secret | privateKey })` with a typed method per
 * endpoint. The HTTP layer is openapi-fetch over the generated `paths`; this module adds what
 * the spec cannot say: signing, clock-skew correction, safe retries, rate-limit tracking and
 * problem details thrown as `BourseError`.
 */
import createClient, { type Client } from "openapi-fetch";
import { BourseError, errorFromResponse } from "./errors.js";
import type { paths } from "./generated/openapi.js";
import { Paginator, type Page } from "./pagination.js";
import { parseRateLimit, type RateLimitInfo } from "./ratelimit.js";
import {
  checkCancelAfterTimeout, MAX_BATCH_ORDERS, type BatchResult, type CancelAfterResult, type OrderAmend, type OrderRequest,
} from "./orderentry.js";
import { createSigner, signedHeaders, type Signer } from "./signing.js";
import type {
  Account, Asset, Balance, Book, BookQuery, CancelAll, CancelAllQuery, Candle, CandleInterval, CandleQuery, Fill,
  FillListQuery, LedgerEntry, LedgerListQuery, Market, Order, OrderListQuery, OrderSubmit, PageQuery, Position,
  ServerTime, Ticker, Trade, TradeListQuery,
} from "./types.js";

export type FetchLike = (input: Request) => Promise<Response>;

/** The candle query besides `interval`; times as RFC 3339 strings or `Date`s. */
export interface CandleRange {
  start?: string | Date;
  end?: string | Date;
  limit?: number;
}

function timeQuery(range: CandleRange): Omit<CandleQuery, "interval"> {
  const out: Omit<CandleQuery, "interval"> = {};
  if (range.start !== undefined) out.start = range.start instanceof Date ? range.start.toISOString() : range.start;
  if (range.end !== undefined) out.end = range.end instanceof Date ? range.end.toISOString() : range.end;
  if (range.limit !== undefined) out.limit = range.limit;
  return out;
}

export interface BourseOptions {
  /** Server origin, e.g. `http://127.0.0.1:8000` (a trailing `/api/v1` is tolerated). */
  baseUrl: string;
  /** API key id (`bk_...`); needed for private endpoints. */
  key?: string;
  /** HMAC key: the secret exactly as `create_trader` printed it. */
  secret?: string;
  /** Ed25519 key: base64 of the 32-byte seed, or the raw seed bytes. */
  privateKey?: string | Uint8Array;
  /** `X-API-Window` in ms (1-60000); the server's default (5000) when unset. */
  windowMs?: number;
  /** Retries of safe requests (GET; POST /orders with a client_order_id). Default 2. */
  maxRetries?: number;
  /** First back-off delay in ms, doubled per retry. Default 200. */
  retryDelayMs?: number;
  /** Longest wait honoured for a 429's Retry-After before giving up, in ms. Default 10000. */
  maxRetryWaitMs?: number;
  /** Starting clock offset in ms (server minus local), e.g. from an earlier `syncClock()`. Default 0. */
  clockOffsetMs?: number;
  /** Re-sync the clock from `/time` and retry once on `timestamp_out_of_window`. Default true. */
  correctClockSkew?: boolean;
  /** Extra headers on every request (e.g. a tracing `X-Request-ID`). */
  headers?: Record<string, string>;
  /** Replaces the global fetch (tests, proxies, instrumentation). */
  fetch?: FetchLike;
}

// Transient statuses worth retrying for a request that is safe to repeat.
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const PUBLIC_PREFIXES = ["/api/v1/time", "/api/v1/markets", "/api/v1/tickers", "/api/v1/assets", "/api/v1/openapi.yaml"];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isPublic(path: string): boolean {
  return PUBLIC_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}

function hasClientOrderId(body: Uint8Array): boolean {
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
    const id = (parsed as { client_order_id?: unknown } | null)?.client_order_id;
    return typeof id === "string" && id.length > 0;
  } catch {
    return false;
  }
}

export class Bourse {
  /** The openapi-fetch client: typed `GET`/`POST`/`DELETE` for anything not wrapped below. */
  readonly raw: Client<paths>;
  readonly baseUrl: string;
  readonly keyId: string | undefined;
  /** Rate-limit fields of the last response that carried them. */
  rateLimit: RateLimitInfo | null = null;

  readonly #signer: Signer | undefined;
  readonly #fetch: FetchLike;
  readonly #options: Required<Pick<BourseOptions, "maxRetries" | "retryDelayMs" | "maxRetryWaitMs" | "correctClockSkew">>;
  readonly #windowMs: number | undefined;
  readonly #headers: Record<string, string>;
  #clockOffsetMs = 0;

  constructor(options: BourseOptions) {
    if (!options.baseUrl) throw new TypeError("baseUrl is required, e.g. http://127.0.0.1:8000");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "").replace(/\/api\/v1$/, "");
    this.keyId = options.key;
    if (options.secret !== undefined || options.privateKey !== undefined) {
      if (!options.key) throw new TypeError("key (the API key id) is required with a secret or privateKey");
      this.#signer = createSigner({ secret: options.secret, privateKey: options.privateKey });
    }
    if (options.windowMs !== undefined && !(Number.isInteger(options.windowMs) && options.windowMs >= 1 && options.windowMs <= 60000)) {
      throw new RangeError("windowMs must be an integer from 1 to 60000");
    }
    this.#windowMs = options.windowMs;
    this.#headers = { ...options.headers };
    this.#clockOffsetMs = options.clockOffsetMs ?? 0;
    const globalFetch = globalThis.fetch;
    this.#fetch = options.fetch ?? ((request) => globalFetch(request));
    this.#options = {
      maxRetries: options.maxRetries ?? 2,
      retryDelayMs: options.retryDelayMs ?? 200,
      maxRetryWaitMs: options.maxRetryWaitMs ?? 10_000,
      correctClockSkew: options.correctClockSkew ?? true,
    };
    this.raw = createClient<paths>({ baseUrl: this.baseUrl, fetch: (request) => this.#send(request) });
  }

  /** Milliseconds added to the local clock when signing (server clock minus local clock). */
  get clockOffsetMs(): number {
    return this.#clockOffsetMs;
  }

  /** The signing clock: local time corrected by the measured offset. */
  now(): number {
    return Date.now() + this.#clockOffsetMs;
  }

  /** Measures the offset to the server's clock from `GET /time` (midpoint of the round trip). */
  async syncClock(): Promise<number> {
    const before = Date.now();
    const response = await this.#fetch(new Request(`${this.baseUrl}/api/v1/time`, { headers: { Accept: "application/json" } }));
    const after = Date.now();
    const body: unknown = await response.json().catch(() => null);
    if (!response.ok) throw errorFromResponse(response, body, { method: "GET", path: "/api/v1/time" });
    const epochMs = (body as ServerTime).epoch_ms;
    this.#clockOffsetMs = Math.round(epochMs - (before + after) / 2);
    return this.#clockOffsetMs;
  }

  // ---- transport ------------------------------------------------------------------------

  async #send(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const method = request.method.toUpperCase();
    const body = method === "GET" || method === "HEAD" ? new Uint8Array() : new Uint8Array(await request.arrayBuffer());
    // The server signs over Django's request.path, which is percent-decoded.
    const path = decodeURIComponent(url.pathname);
    const query = url.search.replace(/^\?/, "");
    const signed = !isPublic(path);
    if (signed && !this.#signer) {
      throw new TypeError(`${method} ${path} needs credentials: pass key and secret (or privateKey) to new Bourse()`);
    }
    // Repeating is safe for reads, and for a submission that names a client_order_id: the
    // server answers a resubmission with the existing order, never a second one.
    // Re-arming the dead-man switch with the same timeout is idempotent too.
    const retryable = method === "GET" || (method === "POST" && path === "/api/v1/orders" && hasClientOrderId(body))
      || (method === "POST" && path === "/api/v1/cancel-after");
    let skewCorrected = false;
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(request.headers);
      for (const [name, value] of Object.entries(this.#headers)) headers.set(name, value);
      if (signed && this.#signer && this.keyId) {
        const signature = await signedHeaders(this.keyId, this.#signer, { method, path, query, body, timestamp: this.now() });
        for (const [name, value] of Object.entries(signature)) headers.set(name, value);
        if (this.#windowMs !== undefined) headers.set("X-API-Window", String(this.#windowMs));
      }
      const init: RequestInit = { method, headers, signal: request.signal };
      if (body.byteLength > 0) init.body = body;
      let response: Response;
      try {
        response = await this.#fetch(new Request(url, init));
      } catch (error) {
        if (retryable && attempt < this.#options.maxRetries && !request.signal.aborted) {
          await sleep(this.#backoff(attempt));
          continue;
        }
        throw error;
      }
      const rateLimit = parseRateLimit(response.headers);
      if (rateLimit) this.rateLimit = rateLimit;
      if (response.status === 401 && signed && this.#options.correctClockSkew && !skewCorrected) {
        const problem: unknown = await response.clone().json().catch(() => null);
        if ((problem as { code?: unknown } | null)?.code === "timestamp_out_of_window") {
          // Correct the clock for every later call; re-send only what is safe to repeat. A
          // non-idempotent request (an order without client_order_id) is never re-sent by the
          // SDK on its own: the caller gets the refusal and decides.
          skewCorrected = true;
          await this.syncClock();
          if (retryable) {
            attempt--;
            continue;
          }
        }
      }
      if (retryable && attempt < this.#options.maxRetries && RETRY_STATUSES.has(response.status)) {
        const wait = response.status === 429 && rateLimit?.retryAfterSeconds != null
          ? rateLimit.retryAfterSeconds * 1000
          : this.#backoff(attempt);
        if (wait <= this.#options.maxRetryWaitMs) {
          await response.body?.cancel().catch(() => undefined);
          await sleep(wait);
          continue;
        }
      }
      return response;
    }
  }

  #backoff(attempt: number): number {
    return this.#options.retryDelayMs * 2 ** attempt;
  }

  /** Unwraps an openapi-fetch result: the data, or a thrown BourseError. */
  async #call<T>(method: string, path: string, call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
    const { data, error, response } = await call;
    if (!response.ok || data === undefined) {
      throw errorFromResponse(response, error ?? null, { method, path, rateLimit: parseRateLimit(response.headers) });
    }
    return data;
  }

  /** A JSON request outside the generated `paths` (shapes in orderentry.ts), through the same transport. */
  async #json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { ...init.headers, "Content-Type": "application/json" };
    }
    const response = await this.#send(new Request(`${this.baseUrl}${path}`, init));
    const data: unknown = await response.json().catch(() => undefined);
    if (!response.ok || data === undefined) {
      throw errorFromResponse(response, data ?? null, { method, path, rateLimit: parseRateLimit(response.headers) });
    }
    return data as T;
  }

  #paginate<T>(path: string, fetchPage: (cursor: string | undefined) => Promise<{ data?: Page<T>; error?: unknown; response: Response }>): Paginator<T> {
    return new Paginator<T>((cursor) => this.#call("GET", path, fetchPage(cursor)));
  }

  // ---- public -------------------------------------------------------------------------

  /** `GET /time`: the server clock. */
  time(): Promise<ServerTime> {
    return this.#call("GET", "/api/v1/time", this.raw.GET("/api/v1/time"));
  }

  readonly markets = {
    /** `GET /markets`, every market (paged). */
    list: (query: PageQuery = {}): Paginator<Market> =>
      this.#paginate("/api/v1/markets", (cursor) => this.raw.GET("/api/v1/markets", { params: { query: { ...query, cursor } } })),
    /** `GET /markets/{symbol}`. */
    get: (symbol: string): Promise<Market> =>
      this.#call("GET", "/api/v1/markets/{symbol}", this.raw.GET("/api/v1/markets/{symbol}", { params: { path: { symbol } } })),
    /** `GET /markets/{symbol}/book?depth=N`: levels as `[price, quantity]`, with the book's sequence. */
    book: (symbol: string, query: BookQuery = {}): Promise<Book> =>
      this.#call("GET", "/api/v1/markets/{symbol}/book",
        this.raw.GET("/api/v1/markets/{symbol}/book", { params: { path: { symbol }, query } })),
    /** `GET /markets/{symbol}/trades`, newest first (paged); `start_time`/`end_time` bound `created_at`. */
    trades: (symbol: string, query: TradeListQuery = {}): Paginator<Trade> =>
      this.#paginate("/api/v1/markets/{symbol}/trades", (cursor) =>
        this.raw.GET("/api/v1/markets/{symbol}/trades", { params: { path: { symbol }, query: { ...query, cursor } } })),
    /** `GET /markets/{symbol}/ticker`. */
    ticker: (symbol: string): Promise<Ticker> =>
      this.#call("GET", "/api/v1/markets/{symbol}/ticker", this.raw.GET("/api/v1/markets/{symbol}/ticker", { params: { path: { symbol } } })),
    /**
     * `GET /markets/{symbol}/candles?interval=&start=&end=&limit=`: OHLCV bars, oldest first.
     * `start`/`end` (RFC 3339) bound the bars' `open_time`; a `Date` is sent as its ISO string.
     */
    candles: (symbol: string, interval: CandleInterval, query: CandleRange = {}): Promise<Candle[]> =>
      this.#call("GET", "/api/v1/markets/{symbol}/candles", this.raw.GET("/api/v1/markets/{symbol}/candles", {
        params: { path: { symbol }, query: { interval, ...timeQuery(query) } },
      })),
  };

  readonly tickers = {
    /** `GET /tickers`: every market's ticker (paged, by symbol). */
    list: (query: PageQuery = {}): Paginator<Ticker> =>
      this.#paginate("/api/v1/tickers", (cursor) => this.raw.GET("/api/v1/tickers", { params: { query: { ...query, cursor } } })),
  };

  readonly assets = {
    /** `GET /assets`: every asset's symbol and decimals (paged). */
    list: (query: PageQuery = {}): Paginator<Asset> =>
      this.#paginate("/api/v1/assets", (cursor) => this.raw.GET("/api/v1/assets", { params: { query: { ...query, cursor } } })),
  };

  // ---- private ------------------------------------------------------------------------

  /** `GET /account`: the account and the calling key (scopes, allowlist, expiry). */
  account(): Promise<Account> {
    return this.#call("GET", "/api/v1/account", this.raw.GET("/api/v1/account"));
  }

  readonly balances = {
    /** `GET /balances`: per asset `total`, `available`, `locked` (paged). */
    list: (query: PageQuery = {}): Paginator<Balance> =>
      this.#paginate("/api/v1/balances", (cursor) => this.raw.GET("/api/v1/balances", { params: { query: { ...query, cursor } } })),
  };

  readonly positions = {
    /** `GET /positions`: net quantity, average entry, realized and unrealized PnL per market. */
    list: async (): Promise<Position[]> =>
      (await this.#call("GET", "/api/v1/positions", this.raw.GET("/api/v1/positions"))).results,
  };

  readonly orders = {
    /**
     * `POST /orders`: the order as the engine left it (`status` `pending` when the engine did
     * not answer in time). With a `client_order_id` the call is idempotent and retried on
     * transient failures; without one it is sent exactly once.
     */
    submit: (order: OrderSubmit): Promise<Order> =>
      this.#call("POST", "/api/v1/orders", this.raw.POST("/api/v1/orders", { body: order })),
    /** `GET /orders/{order_id}`. */
    get: (orderId: string): Promise<Order> =>
      this.#call("GET", "/api/v1/orders/{order_id}", this.raw.GET("/api/v1/orders/{order_id}", { params: { path: { order_id: orderId } } })),
    /** `GET /orders/by-client-id/{client_order_id}`. */
    getByClientId: (clientOrderId: string): Promise<Order> =>
      this.#call("GET", "/api/v1/orders/by-client-id/{client_order_id}",
        this.raw.GET("/api/v1/orders/by-client-id/{client_order_id}", { params: { path: { client_order_id: clientOrderId } } })),
    /** `GET /orders?market=&status=open|closed|all` (paged; default open orders). */
    list: (query: OrderListQuery = {}): Paginator<Order> =>
      this.#paginate("/api/v1/orders", (cursor) => this.raw.GET("/api/v1/orders", { params: { query: { ...query, cursor } } })),
    /** `DELETE /orders/{order_id}`: the order as the engine left it. Not retried (a repeat would be `order_closed`). */
    cancel: (orderId: string): Promise<Order> =>
      this.#call("DELETE", "/api/v1/orders/{order_id}",
        this.raw.DELETE("/api/v1/orders/{order_id}", { params: { path: { order_id: orderId } } })),
    /**
     * `POST /orders` with the second-wave fields: `stop_limit`/`stop_market` with `stop_price`,
     * `time_in_force: "gtd"` with `expire_time`. Idempotent (and retried) with a `client_order_id`.
     */
    place: (order: OrderRequest): Promise<Order> => this.#json("POST", "/api/v1/orders", order),
    /**
     * `PATCH /orders/{order_id}`: amend in place (same `order_id`). A quantity decrease keeps
     * time priority; a price change or a quantity increase loses it. Not retried.
     */
    amend: (orderId: string, changes: OrderAmend): Promise<Order> => {
      if (!Object.keys(changes).length) throw new TypeError("amend needs price, quantity or client_order_id");
      return this.#json("PATCH", `/api/v1/orders/${encodeURIComponent(orderId)}`, changes);
    },
    /** `DELETE /orders/by-client-id/{client_order_id}`: the order as the engine left it. Not retried. */
    cancelByClientId: (clientOrderId: string): Promise<Order> =>
      this.#json("DELETE", `/api/v1/orders/by-client-id/${encodeURIComponent(clientOrderId)}`),
    /**
     * `POST /orders/batch`: up to 20 orders, each answered on its own in request order
     * (`{status, order}` or `{status, error}`); one refusal does not undo the others. Not retried.
     */
    batch: (orders: OrderRequest[]): Promise<BatchResult> => {
      if (!orders.length || orders.length > MAX_BATCH_ORDERS) {
        throw new RangeError(`a batch holds 1 to ${MAX_BATCH_ORDERS} orders`);
      }
      // The second-wave order fields ride along until the generated OrderSubmit has them.
      const body = { orders: orders as unknown as OrderSubmit[] };
      return this.#call("POST", "/api/v1/orders/batch", this.raw.POST("/api/v1/orders/batch", { body }));
    },
    /** `DELETE /orders?market=`: cancels every open order (of one market), returns their ids. */
    cancelAll: (query: CancelAllQuery = {}): Promise<CancelAll> =>
      this.#call("DELETE", "/api/v1/orders", this.raw.DELETE("/api/v1/orders", { params: { query } })),
  };

  /**
   * `POST /cancel-after`: the dead-man switch of this API key. Unless re-armed within
   * `timeoutMs`, every open order of the account is cancelled (`cancel_reason` `dead_man`);
   * 0 disarms. Call it again well before the deadline to keep the orders.
   */
  cancelAfter(timeoutMs: number): Promise<CancelAfterResult> {
    checkCancelAfterTimeout(timeoutMs);
    return this.#call("POST", "/api/v1/cancel-after", this.raw.POST("/api/v1/cancel-after", { body: { timeout_ms: timeoutMs } }));
  }

  readonly fills = {
    /** `GET /fills?market=&order_id=` (paged, newest first). */
    list: (query: FillListQuery = {}): Paginator<Fill> =>
      this.#paginate("/api/v1/fills", (cursor) => this.raw.GET("/api/v1/fills", { params: { query: { ...query, cursor } } })),
  };

  readonly ledger = {
    /** `GET /ledger?asset=`: signed ledger entries (paged, newest first). */
    list: (query: LedgerListQuery = {}): Paginator<LedgerEntry> =>
      this.#paginate("/api/v1/ledger", (cursor) => this.raw.GET("/api/v1/ledger", { params: { query: { ...query, cursor } } })),
  };
}

export { BourseError };
