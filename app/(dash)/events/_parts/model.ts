/** Events as the pages hold them, and the filters a live event must pass. */
import type { RouterInputs, RouterOutputs } from "../../../_lib/types";

export type EventItem = RouterOutputs["events"]["list"]["events"][number];
export type EventDetail = RouterOutputs["events"]["get"];
export type EventFilter = Omit<RouterInputs["events"]["list"], "limit" | "before">;

/** Contexts of supervisor reports (and the ones worth a quick pick). */
export const CONTEXTS = ["child_terminated", "start_error", "shutdown_error", "shutdown"] as const;
export const KINDS = ["supervisor_report", "crash_report", "progress_report", "alarm_set", "alarm_clear", "agent"] as const;

/** The same test the server applies to `events.list` (one definition, server/events/filter.ts). */
export { matchesEvent as matches } from "../../../../server/events/filter";

/** Newest first by id (decimal strings of a bigint). */
export function byIdDesc(a: { id: string }, b: { id: string }): number {
  return a.id.length !== b.id.length ? b.id.length - a.id.length : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export const nodeHref = (node: string, pid?: string | null) => `/nodes/${encodeURIComponent(node)}${pid ? `?pid=${encodeURIComponent(pid)}` : ""}`;
