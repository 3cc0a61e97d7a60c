/**
 * Shapes of the order-management additions of the second wave (API.md "Additions (second
 * wave)"), all from docs/openapi.yaml (generated types): stop and good-till-date fields,
 * amend, batch orders and the dead-man switch.
 */
import type { components, OrderSubmit } from "./types.js";

export type OrderTypeExtended = components["schemas"]["TypeEnum"];
export type TimeInForceExtended = components["schemas"]["TimeInForceEnum"];

/** `POST /orders` body, stop (`stop_price`) and good-till-date (`expire_time`) fields included. */
export type OrderRequest = OrderSubmit;

/** `PATCH /orders/{order_id}`: any of these; `quantity` is the new total quantity. */
export type OrderAmend = components["schemas"]["PatchedOrderAmend"];

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
