/**
 * Options for a transaction that serialises on an advisory lock (the audit
 * chain's head, an alert group): each waiter holds a pooled connection while
 * it waits for the lock. Under bursts — tens of audited actions through
 * several instances at once on a loaded host — Prisma's defaults (2 s to
 * start, 5 s to finish) refused such transactions, losing an audit entry or
 * an alert. Bounded, but wide.
 */
export const SERIALISED_TX = { maxWait: 20_000, timeout: 20_000 } as const;
