/** Events as the pages hold them, and the filters a live event must pass. */
import type { RouterInputs, RouterOutputs } from "../../../_lib/types";

export type EventItem = RouterOutputs["events"]["list"]["events"][number];
export type EventDetail = RouterOutputs["events"]["get"];
export type EventFilter = Omit<RouterInputs["events"]["list"], "limit" | "before">;

/** Contexts of supervisor reports (and the ones worth a quick pick). */
export const CONTEXTS = ["child_terminated", "start_error", "shutdown_error", "shutdown"] as const;
export const KINDS = ["supervisor_report", "crash_report", "progress_report", "alarm_set", "alarm_clear", "agent"] as const;

/** The same test the server applies to `events.list` (node is the subscription's input). */
export function matches(e: EventItem, f: EventFilter): boolean {
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

/** Newest first by id (decimal strings of a bigint). */
export function byIdDesc(a: { id: string }, b: { id: string }): number {
  return a.id.length !== b.id.length ? b.id.length - a.id.length : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export const nodeHref = (node: string, pid?: string | null) => `/nodes/${encodeURIComponent(node)}${pid ? `?pid=${encodeURIComponent(pid)}` : ""}`;
