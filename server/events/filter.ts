/**
 * The events filter, decided once: its input, the database query for
 * `events.list`, and the same test for a live event (the events page applies
 * it to what `events.onEvents` streams). Pure: the browser imports it.
 */
import { z } from "zod";
import type { Prisma } from "../../generated/prisma/browser";
import { nodeName } from "../agents/names";

export const eventFilter = z.object({
  node: nodeName.optional(),
  kind: z.string().max(64).optional(),
  supervisor: z.string().max(255).optional(),
  context: z.string().max(64).optional(),
  reason: z.string().max(255).optional(),
  offenderPid: z.string().max(64).optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
});
export type EventFilter = z.infer<typeof eventFilter>;

/** What the test reads of an event (an `EventView`). */
export interface FilterableEvent {
  node: string;
  kind: string;
  context: string | null;
  supervisor: string | null;
  reason: string | null;
  offender: { pid: string | null } | null;
  at: number;
}

/** The filter as a database query: exact kind, context, node and offender; supervisor and reason contain the text. */
export function eventWhere(f: EventFilter): Prisma.EventWhereInput {
  return {
    ...(f.node ? { node: f.node } : {}),
    ...(f.kind ? { kind: f.kind } : {}),
    ...(f.supervisor ? { supervisor: { contains: f.supervisor } } : {}),
    ...(f.context ? { context: f.context } : {}),
    ...(f.reason ? { reason: { contains: f.reason } } : {}),
    ...(f.offenderPid ? { offenderPid: f.offenderPid } : {}),
    ...(f.since || f.until ? { at: { ...(f.since ? { gte: new Date(f.since) } : {}), ...(f.until ? { lte: new Date(f.until) } : {}) } } : {}),
  };
}

/** The same test for one event, as `eventWhere` applies it in the database. */
export function matchesEvent(e: FilterableEvent, f: EventFilter): boolean {
  if (f.node && e.node !== f.node) return false;
  if (f.kind && e.kind !== f.kind) return false;
  if (f.context && e.context !== f.context) return false;
  if (f.supervisor && !(e.supervisor ?? "").includes(f.supervisor)) return false;
  if (f.reason && !(e.reason ?? "").includes(f.reason)) return false;
  if (f.offenderPid && e.offender?.pid !== f.offenderPid) return false;
  if (f.since && e.at < Date.parse(f.since)) return false;
  if (f.until && e.at > Date.parse(f.until)) return false;
  return true;
}
