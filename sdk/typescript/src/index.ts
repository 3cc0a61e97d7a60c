/** @bourse/sdk: typed REST and WebSocket clients for the Bourse exchange API. */
export { Bourse, type BourseOptions, type CandleRange, type FetchLike } from "./client.js";
export { BourseError, errorFromResponse, UNEXPECTED_RESPONSE, type ErrorCode, type FieldError, type Problem } from "./errors.js";
export {
  checkCancelAfterTimeout, MAX_BATCH_ORDERS, type BatchItem, type BatchResult, type CancelAfterResult, type OrderAmend,
  type OrderRequest, type OrderTypeExtended, type TimeInForceExtended,
} from "./orderentry.js";
export { Paginator, type Page } from "./pagination.js";
export { parseRateLimit, type RateLimitInfo, type RateLimitPolicy, type RateLimitRemaining } from "./ratelimit.js";
export {
  createSigner, ed25519Signer, hmacSigner, randomNonce, sha256Hex, signedHeaders, signedString, signRequest,
  EMPTY_BODY_SHA256, type Credentials, type SignInput, type SignedHeaders, type Signer,
} from "./signing.js";
export type * from "./types.js";
export {
  bookChecksum, CHECKSUM_DEPTH, compareDecimal, crc32, LocalOrderBook, type ApplyResult, type BookLevel, type BookSnapshot,
} from "./book.js";
export {
  BourseStream, PERMANENT_REFUSALS, type BalanceFrame, type BookFrame, type CandleFrame, type BourseStreamOptions, type Channel, type FillFrame, type OrderFrame,
  type PrivateChannel, type PrivateFrame, type StreamEvents, type TickerFrame, type TradeFrame, type WebSocketFactory,
  type WebSocketLike,
} from "./stream.js";
