/**
 * The IETF RateLimit header fields Bourse sends on authenticated responses, parsed:
 * `RateLimit-Policy: "key";q=1200;w=60, "orders";q=50;w=10` and `RateLimit: "key";r=1187;t=41`.
 */

/** One budget from `RateLimit-Policy`: `quota` requests per `windowSeconds`. */
export interface RateLimitPolicy {
  name: string;
  quota: number;
  windowSeconds: number;
}

/** What is left of one budget, from `RateLimit`. */
export interface RateLimitRemaining {
  name: string;
  remaining: number;
  resetSeconds: number;
}

/** Rate-limit information of one response. */
export interface RateLimitInfo {
  policies: RateLimitPolicy[];
  limits: RateLimitRemaining[];
  /** `Retry-After` in seconds, on a 429. */
  retryAfterSeconds: number | null;
}

/** Splits a structured-field list into (name, parameters) items; tolerant of spacing. */
function items(header: string | null): { name: string; params: Record<string, number> }[] {
  if (!header) return [];
  const out: { name: string; params: Record<string, number> }[] = [];
  for (const item of header.split(",")) {
    const [rawName, ...rawParams] = item.trim().split(";");
    if (!rawName) continue;
    const name = rawName.trim().replace(/^"(.*)"$/, "$1");
    const params: Record<string, number> = {};
    for (const param of rawParams) {
      const [key, value] = param.split("=");
      const number = Number(value);
      if (key && Number.isFinite(number)) params[key.trim()] = number;
    }
    out.push({ name, params });
  }
  return out;
}

/** The rate-limit fields of a response, or null when it carries none (public endpoints). */
export function parseRateLimit(headers: Headers): RateLimitInfo | null {
  const policy = headers.get("RateLimit-Policy");
  const limit = headers.get("RateLimit");
  const retryAfter = headers.get("Retry-After");
  if (policy === null && limit === null && retryAfter === null) return null;
  const retry = retryAfter === null ? NaN : Number(retryAfter);
  return {
    policies: items(policy).map(({ name, params }) => ({
      name,
      quota: params.q ?? NaN,
      windowSeconds: params.w ?? NaN,
    })),
    limits: items(limit).map(({ name, params }) => ({
      name,
      remaining: params.r ?? NaN,
      resetSeconds: params.t ?? NaN,
    })),
    retryAfterSeconds: Number.isFinite(retry) ? retry : null,
  };
}
