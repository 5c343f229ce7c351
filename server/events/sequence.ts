/**
 * Sequence numbers of one boot on one socket (issue 10, items 2 and 19).
 *
 * The ack is the contiguous prefix: an event is accepted only right after the
 * last one. A jump is a gap, recorded as an `event_gap` event of its own:
 * "declared" when the agent said its buffer dropped those seqs
 * (`droppedSeqs`), "undeclared" otherwise (which pages: someone may be
 * suppressing reports). Frames on one socket arrive in order and the agent
 * sends in seq order, so a gap seen on a socket cannot be filled later; the
 * ack moves past it so the agent does not stall.
 */
import type { EventFrame } from "../agents/protocol";

export interface Sequenced {
  /** Events to store, gap records first (in seq order). */
  store: EventFrame[];
  /** The new contiguous prefix to acknowledge. */
  acked: number;
  /** Events skipped because they were at or below the prefix (replays). */
  replays: number;
}

export function gapBootId(bootId: string): string {
  return `gap:${bootId}`;
}

export function regressionBootId(bootId: string): string {
  return `regression:${bootId}`;
}

export function sequenceEvents(acked: number, bootId: string, batch: EventFrame[]): Sequenced {
  const store: EventFrame[] = [];
  let replays = 0;
  let upTo = acked;
  for (const e of batch) {
    if (e.bootId !== bootId) throw new Error(`event for boot ${e.bootId} on a connection of boot ${bootId}`);
    if (e.seq <= upTo) {
      replays += 1;
      continue;
    }
    if (e.seq > upTo + 1) {
      const from = upTo + 1;
      const to = e.seq - 1;
      const d = e.droppedSeqs;
      const declared = d !== undefined && d[0] <= from && d[1] >= to;
      store.push({
        type: "event",
        bootId: gapBootId(bootId),
        seq: from,
        at: e.at,
        kind: "event_gap",
        context: declared ? "declared" : "undeclared",
        reason: { text: `seqs ${from}-${to} of boot ${bootId} missing (${to - from + 1})${declared ? ": the agent's buffer dropped them" : ""}`, truncated: false },
        from,
        to,
      });
    }
    store.push(e);
    upTo = e.seq;
  }
  return { store, acked: upTo, replays };
}

/** The record of a regression: the server held seqs of this boot beyond what the agent says it produced. */
export function regressionEvent(bootId: string, epoch: number, agentLast: number, storedLast: number): EventFrame {
  return {
    type: "event",
    bootId: regressionBootId(bootId),
    seq: Math.max(1, epoch),
    at: Date.now(),
    kind: "event_gap",
    context: "regression",
    reason: {
      text: `stored seqs ${agentLast + 1}-${storedLast} of boot ${bootId} were never sent by this node's agent (it is at ${agentLast}); they were set aside as ${regressionBootId(bootId)}`,
      truncated: false,
    },
    from: agentLast + 1,
    to: storedLast,
  };
}
