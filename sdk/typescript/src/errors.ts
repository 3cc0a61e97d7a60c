/**
 * The one error type the SDK throws for a refused request: the server's RFC 9457 problem
 * details (`code`, `status`, `requestId`, field `errors`, ...) as typed properties.
 */
import type { components } from "./generated/openapi.js";
import type { RateLimitInfo } from "./ratelimit.js";

/** The catalogued error codes (docs/errors.md); `string` keeps newer server codes usable. */
export type ErrorCode = components["schemas"]["CodeEnum"] | (string & {});
export type FieldError = components["schemas"]["FieldError"];
export type Problem = components["schemas"]["Problem"];

/** Code given to a response that is not a problem document (e.g. a proxy's HTML 502). */
export const UNEXPECTED_RESPONSE = "unexpected_response";

export interface BourseErrorInit {
  status: number;
  code: ErrorCode;
  title: string;
  detail: string;
  type?: string;
  requestId?: string | null;
  errors?: FieldError[];
  body?: unknown;
  rateLimit?: RateLimitInfo | null;
  method?: string;
  path?: string;
}

export class BourseError extends Error {
  override readonly name = "BourseError";
  /** HTTP status (401, 422, ...). */
  readonly status: number;
  /** Stable, catalogued code, e.g. `insufficient_balance`. */
  readonly code: ErrorCode;
  readonly title: string;
  readonly detail: string;
  readonly type: string;
  /** `X-Request-ID` of the refused request: quote it when asking an operator. */
  readonly requestId: string | null;
  /** Per-field errors of a `validation_error` (each with `field`, `code`, `message`, maybe `allowed`). */
  readonly errors: FieldError[];
  /** The whole problem body, including extension members (`server_epoch_ms`, `required_scope`, ...). */
  readonly body: unknown;
  readonly rateLimit: RateLimitInfo | null;
  readonly method: string | undefined;
  readonly path: string | undefined;

  constructor(init: BourseErrorInit) {
    super(`${init.status} ${init.code}: ${init.detail}`);
    this.status = init.status;
    this.code = init.code;
    this.title = init.title;
    this.detail = init.detail;
    this.type = init.type ?? "about:blank";
    this.requestId = init.requestId ?? null;
    this.errors = init.errors ?? [];
    this.body = init.body ?? null;
    this.rateLimit = init.rateLimit ?? null;
    this.method = init.method;
    this.path = init.path;
  }

  /** `Retry-After` in seconds for a 429, else null. */
  get retryAfterSeconds(): number | null {
    return this.rateLimit?.retryAfterSeconds ?? null;
  }

  /** A named extension member of the problem body (e.g. `server_epoch_ms`, `required_scope`). */
  extra(name: string): unknown {
    return typeof this.body === "object" && this.body !== null ? (this.body as Record<string, unknown>)[name] : undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Builds the BourseError for a refused response from its (already parsed) body. A body that is
 * not a problem document still becomes a BourseError, coded `unexpected_response`, so callers
 * have one type to catch.
 */
export function errorFromResponse(
  response: { status: number; statusText?: string; headers: Headers },
  body: unknown,
  context: { method?: string; path?: string; rateLimit?: RateLimitInfo | null } = {},
): BourseError {
  const headerRequestId = response.headers.get("X-Request-ID");
  if (isRecord(body) && typeof body.code === "string") {
    return new BourseError({
      status: typeof body.status === "number" ? body.status : response.status,
      code: body.code,
      title: typeof body.title === "string" ? body.title : "",
      detail: typeof body.detail === "string" ? body.detail : "",
      type: typeof body.type === "string" ? body.type : undefined,
      requestId: typeof body.request_id === "string" ? body.request_id : headerRequestId,
      errors: Array.isArray(body.errors) ? (body.errors as FieldError[]) : [],
      body,
      ...context,
    });
  }
  return new BourseError({
    status: response.status,
    code: UNEXPECTED_RESPONSE,
    title: response.statusText || "Unexpected response",
    detail: `HTTP ${response.status} without a problem document`,
    requestId: headerRequestId,
    body,
    ...context,
  });
}
