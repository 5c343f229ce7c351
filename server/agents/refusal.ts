/**
 * A frame the protocol's schema refused is never dropped silently: the
 * session logs it (a bounded number of lines per socket) and counts it
 * (`beamdeck_agent_frames_refused_total`). An event frame whose seq and boot
 * can still be read is not a reason to close the socket: the agent would
 * replay the same frame after every reconnect and no later event would ever
 * be stored. It is stored in its place as an `event_gap` record with
 * `context: "refused"` (which pages, like an undeclared gap), so the seq is
 * accounted for and the ack moves past it.
 */
import { agentFrame, type EventFrame, eventFrame, truncateUtf8 } from "./protocol";

/** What must still be readable in a refused event for its seq to count: the event schema's own fields. */
const refusedEventEnvelope = eventFrame.pick({ type: true, seq: true, bootId: true });

/** The protocol's frame types: a refused frame is counted and logged under one of these or "other". */
const FRAME_TYPES = new Set<string>(agentFrame.options.map((o) => o.shape.type.value));

/**
 * The type a refused frame is counted and logged under. The agent chooses
 * the text: taken as it is, each reconnect could add a label to /metrics and
 * an entry to the counters for good, or a line break to the log.
 */
export function refusedType(type: string | null): string {
  if (type === null) return "untyped";
  return FRAME_TYPES.has(type) ? type : "other";
}

/** Lines logged per socket before the log goes quiet (the counter keeps counting). */
export const REFUSAL_LOG_LINES = 5;

export function shouldLogRefusal(refusedSoFar: number): boolean {
  return refusedSoFar <= REFUSAL_LOG_LINES || refusedSoFar % 1000 === 0;
}

/** The record stored in place of a refused event, or null when the frame is not an event with a readable seq. */
export function refusedEventRecord(json: Record<string, unknown> | null, reason: string): EventFrame | null {
  const env = refusedEventEnvelope.safeParse(json);
  if (!env.success) return null;
  const { seq, bootId } = env.data;
  const kind = typeof json?.kind === "string" ? ` (kind ${truncateUtf8(json.kind, 64)})` : "";
  return {
    type: "event",
    seq,
    bootId,
    // The node's own time may be what was wrong with the frame.
    at: Date.now(),
    kind: "event_gap",
    context: "refused",
    reason: { text: `event seq ${seq}${kind} of boot ${bootId} refused by the server: ${reason}`, truncated: false },
    from: seq,
    to: seq,
  };
}
