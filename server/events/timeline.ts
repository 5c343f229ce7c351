/**
 * A node's timeline: its events and its upgrade steps, merged newest first.
 * Decided once for the events page and `beamdeck events` (text and --json),
 * so both show the same rows. Pure: the browser imports it.
 *
 * - Steps belong only to one node's timeline with no event filter but time
 *   (kind, context, supervisor, reason, offender: steps have none of them).
 * - While older events remain unloaded (a page, a --limit), only the steps
 *   within the span of the events loaded are shown: a step older than the
 *   oldest event shown would sit where events are missing.
 */

/** The filter fields a step cannot match (the page's and the CLI's names for them). */
export interface TimelineFilter {
  node?: string | null;
  kind?: string | null;
  context?: string | null;
  supervisor?: string | null;
  reason?: string | null;
  offenderPid?: string | null;
}

export function stepsBelong(f: TimelineFilter): boolean {
  return Boolean(f.node) && !(f.kind || f.context || f.supervisor || f.reason || f.offenderPid);
}

export type TimelineItem<E, S> = { at: number; event: E; step: null } | { at: number; event: null; step: S };

/** `events` and `steps` newest first; `complete`: no older event remains to load. */
export function mergeTimeline<E extends { at: number }, S extends { at: number }>(events: E[], steps: S[], complete: boolean): TimelineItem<E, S>[] {
  const oldest = complete ? Number.NEGATIVE_INFINITY : (events.at(-1)?.at ?? Number.POSITIVE_INFINITY);
  const items: TimelineItem<E, S>[] = [...events.map((event) => ({ at: event.at, event, step: null })), ...steps.filter((s) => s.at >= oldest).map((step) => ({ at: step.at, event: null, step }))];
  return items.sort((a, b) => b.at - a.at);
}
