/**
 * Shapes of the order-management additions of the second wave (API.md "Additions (second
 * wave)"). Batch orders and the dead-man switch are in docs/openapi.yaml (generated types);
 * stop and good-till-date fields, amend and cancel by client id are written here from the
 * fixed contract until the document carries them.
 */
import type { components, OrderSubmit } from "./types.js";

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

/** One item of `POST /orders/batch`'s answer, in request order: `order` (2xx) or `error`. */
export type BatchItem = components["schemas"]["OrderBatchResult"];
export type BatchResult = components["schemas"]["OrderBatchResults"];
/** `POST /cancel-after`'s answer: `trigger_time` null when disarmed. */
export type CancelAfterResult = components["schemas"]["CancelAfterState"];

export const MAX_BATCH_ORDERS = 20;

/** Checks `timeout_ms` as API.md bounds it: 0 disarms, otherwise 1000–600000. */
export function checkCancelAfterTimeout(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || (timeoutMs !== 0 && (timeoutMs < 1000 || timeoutMs > 600_000))) {
    throw new RangeError("timeoutMs must be 0 (disarm) or an integer from 1000 to 600000");
  }
}
