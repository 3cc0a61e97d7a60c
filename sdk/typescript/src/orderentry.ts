/**
 * Shapes of the order-management additions of the second wave (API.md "Additions (second
 * wave)"): stop and good-till-date orders, amend, cancel by client id, batch orders and the
 * dead-man switch. They are written here from the fixed contract until docs/openapi.yaml
 * carries them; the methods that use them send and parse them exactly as written there.
 */
import type { Problem } from "./errors.js";
import type { Order, OrderSubmit } from "./types.js";

export type OrderTypeExtended = "limit" | "market" | "stop_limit" | "stop_market";
export type TimeInForceExtended = "gtc" | "ioc" | "fok" | "gtd";

/** `POST /orders` body with the second-wave fields. */
export interface OrderRequest extends Omit<OrderSubmit, "type" | "time_in_force"> {
  type: OrderTypeExtended;
  time_in_force?: TimeInForceExtended;
  /** Stop orders: rest untriggered until a trade prints at or beyond it (buy: ≥, sell: ≤). */
  stop_price?: string | null;
  /** `time_in_force: "gtd"`: RFC 3339, in the future; the order is cancelled (`expired`) then. */
  expire_time?: string | null;
}

/** `PATCH /orders/{order_id}`: any of these; `quantity` is the new total quantity. */
export interface OrderAmend {
  price?: string;
  quantity?: string;
  client_order_id?: string;
}

/** One item of `POST /orders/batch`'s answer, in request order. */
export type BatchItem =
  | { status: 200 | 201 | 202; order: Order }
  | { status: number; error: Problem };

export interface BatchResult {
  results: BatchItem[];
}

/** `POST /cancel-after`'s answer: `trigger_time` null when disarmed. */
export interface CancelAfterResult {
  current_time: string;
  trigger_time: string | null;
}

export const MAX_BATCH_ORDERS = 20;

/** Checks `timeout_ms` as API.md bounds it: 0 disarms, otherwise 1000–600000. */
export function checkCancelAfterTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || (timeoutMs !== 0 && (timeoutMs < 1000 || timeoutMs > 600_000))) {
    throw new RangeError("timeoutMs must be 0 (disarm) or an integer from 1000 to 600000");
  }
}
