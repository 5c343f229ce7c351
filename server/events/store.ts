/**
 * Durable events: agent reports stored once per (node, bootId, seq), however
 * often the agent replays them across reconnects.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import type { EventFrame } from "../agents/protocol";
import type { EventSink } from "../agents/registry";
import type { Hub } from "../live/hub";

export type StoredEventListener = (node: string, events: { id: bigint; frame: EventFrame }[]) => void | Promise<void>;

const INSERT_CHUNK = 500;

function reasonText(e: EventFrame): string | null {
  const r = e.reason as { atom?: string; text?: string } | null | undefined;
  return r ? (r.atom ?? r.text ?? null) : null;
}

/** An event as the API returns it (list, detail, live tail). */
export interface EventView {
  id: string;
  node: string;
  bootId: string;
  seq: number;
  at: number;
  kind: string;
  context: string | null;
  supervisor: string | null;
  reason: string | null;
  offender: { id: string | null; pid: string | null } | null;
  expected: boolean;
  upgradeId: string | null;
}

export function eventView(node: string, id: bigint, e: EventFrame, expected = false, upgradeId: string | null = null): EventView {
  return {
    id: id.toString(),
    node,
    bootId: e.bootId,
    seq: e.seq,
    at: e.at,
    kind: e.kind,
    context: e.context ?? null,
    supervisor: e.supervisor ?? null,
    reason: reasonText(e),
    offender: e.offender ? { id: e.offender.id ?? null, pid: e.offender.pid ?? null } : null,
    expected,
    upgradeId,
  };
}

export class EventStore implements EventSink {
  private readonly listeners: StoredEventListener[] = [];

  constructor(
    private readonly prisma: PrismaClient,
    private readonly hub: Hub,
  ) {}

  /** Called with the events that were new (not duplicates), in seq order. */
  onStored(fn: StoredEventListener): void {
    this.listeners.push(fn);
  }

  async lastSeq(node: string, bootId: string): Promise<number> {
    const agg = await this.prisma.event.aggregate({ where: { node, bootId }, _max: { seq: true } });
    return agg._max.seq ?? 0;
  }

  /**
   * Set aside the stored events of a boot above `aboveSeq` (a regression: the
   * node's agent never sent them) under another boot id, kept for review.
   * Returns how many moved.
   */
  async displace(node: string, bootId: string, aboveSeq: number, asBootId: string): Promise<number> {
    const { count } = await this.prisma.event.updateMany({ where: { node, bootId, seq: { gt: aboveSeq } }, data: { bootId: asBootId } });
    return count;
  }

  async ingest(node: string, events: EventFrame[]): Promise<number> {
    const sorted = [...events].sort((a, b) => a.seq - b.seq);
    const fresh: { id: bigint; frame: EventFrame }[] = [];
    for (let i = 0; i < sorted.length; i += INSERT_CHUNK) {
      const chunk = sorted.slice(i, i + INSERT_CHUNK);
      const params: unknown[] = [];
      const tuples = chunk.map((e) => {
        const offender = e.offender ?? null;
        const base = params.length;
        params.push(node, e.bootId, e.seq, new Date(e.at), e.kind, e.context ?? null, e.supervisor ?? null, reasonText(e), offender?.id ?? null, offender?.pid ?? null, JSON.stringify(e));
        const ph = Array.from({ length: 11 }, (_, k) => `$${base + k + 1}`);
        ph[10] += "::jsonb";
        return `(${ph.join(", ")})`;
      });
      // ON CONFLICT DO NOTHING: a replayed event is a no-op, not an error.
      const rows = await this.prisma.$queryRawUnsafe<{ id: bigint; seq: number; bootId: string }[]>(
        `INSERT INTO "Event" (node, "bootId", seq, at, kind, context, supervisor, reason, "offenderId", "offenderPid", data)
         VALUES ${tuples.join(", ")}
         ON CONFLICT (node, "bootId", seq) DO NOTHING RETURNING id, seq, "bootId"`,
        ...params,
      );
      const bySeq = new Map(chunk.map((e) => [`${e.bootId}/${e.seq}`, e]));
      for (const r of rows.sort((a, b) => a.seq - b.seq)) {
        const frame = bySeq.get(`${r.bootId}/${r.seq}`);
        if (frame) fresh.push({ id: BigInt(r.id), frame });
      }
    }
    const bootId = sorted[sorted.length - 1]?.bootId;
    const upTo = bootId ? await this.lastSeq(node, bootId) : 0;
    if (fresh.length > 0) {
      for (const fn of this.listeners) {
        try {
          await fn(node, fresh);
        } catch (err) {
          console.error(`[beamdeck] event listener failed: ${(err as Error).message}`);
        }
      }
      // Published after the listeners ran: the alert engine may have marked
      // some as expected (an upgrade predicted them), and the tail shows that.
      const shown = fresh.slice(0, 200);
      const flags = new Map(
        (await this.prisma.event.findMany({ where: { id: { in: shown.map((f) => f.id) }, expected: true }, select: { id: true, upgradeId: true } })).map((r) => [r.id, r.upgradeId]),
      );
      this.hub.publish("events", { node, events: shown.map((f) => eventView(node, f.id, f.frame, flags.has(f.id), flags.get(f.id) ?? null)) });
    }
    return upTo;
  }
}
