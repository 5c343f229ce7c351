"use client";
/** Webhook delivery states, compact: delivered / pending (attempt n) / failed (error). */
import { toMs } from "../../../_lib/when";
import { dateTime } from "../../../_lib/format";

export interface DeliveryLike {
  status: string;
  attempts: number;
  lastError: string | null;
  lastStatus?: number | null;
  deliveredAt?: string | Date | null;
  nextAttemptAt?: string | Date | null;
}

export function deliveryText(d: DeliveryLike): string {
  if (d.status === "delivered") return `delivered${d.lastStatus ? ` (HTTP ${d.lastStatus})` : ""}${d.attempts > 1 ? ` after ${d.attempts} attempts` : ""}`;
  if (d.status === "failed") return `failed after ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`;
  return d.attempts ? `retrying (attempt ${d.attempts} failed)` : "pending";
}

export function DeliveryChip({ d }: { d: DeliveryLike }) {
  const title = [
    deliveryText(d),
    d.lastError ? `last error: ${d.lastError}` : null,
    d.deliveredAt ? `delivered ${dateTime(toMs(d.deliveredAt) ?? 0)}` : null,
    d.status === "pending" && d.nextAttemptAt ? `next attempt ${dateTime(toMs(d.nextAttemptAt) ?? 0)}` : null,
  ]
    .filter(Boolean)
    .join("\n");
  return (
    <span className={`delivery delivery-${d.status}`} title={title} data-testid="delivery" data-status={d.status} data-attempts={d.attempts}>
      {deliveryText(d)}
      {d.lastError && d.status !== "delivered" ? <span className="delivery-error">: {d.lastError}</span> : null}
    </span>
  );
}
