/** Supervisor/crash reports and alarms: history with filters, detail, live tail. */
import { z } from "zod";
import { eventFrame } from "../agents/protocol";
import { eventFilter, eventWhere, matchesEvent } from "../events/filter";
import { valuesHiddenFor, viewWithoutValues, withoutValues } from "../events/event-values";
import { eventView, type EventView } from "../events/store";
import { fail } from "../errors";
import { readColumn } from "../storage/json-column";
import { router, viewerProcedure } from "../trpc";
import { readParams } from "../upgrades/stored";
import { nodeName } from "./node-input";

type Row = { id: bigint; node: string; bootId: string; seq: number; at: Date; kind: string; data: unknown; expected: boolean; upgradeId: string | null };
/** The stored frame (checked by the same schema when it arrived); a row that no longer matches shows its indexed columns. */
const frameOf = (r: Row) => readColumn(`event ${r.id}`, eventFrame, r.data, { type: "event", bootId: r.bootId, seq: r.seq, at: r.at.getTime(), kind: r.kind });
/** `hidden`: why values are taken out for this caller (event-values.ts), null when they are not. */
const shownFrame = (r: Row, hidden: string | null) => (hidden === null ? frameOf(r) : withoutValues(frameOf(r), hidden));
const view = (r: Row, hidden: string | null): EventView => eventView(r.node, r.id, shownFrame(r, hidden), r.expected, r.upgradeId);
const ROW = { id: true, node: true, bootId: true, seq: true, at: true, kind: true, data: true, expected: true, upgradeId: true } as const;

export const eventsRouter = router({
  list: viewerProcedure.input(eventFilter.extend({ limit: z.number().int().min(1).max(1000).default(100), before: z.string().regex(/^\d+$/).optional() })).query(async ({ ctx, input }) => {
    const hidden = await valuesHiddenFor(ctx.services.prisma, ctx.principal.role);
    // A reason filter must not find values the caller may not see: it applies to the reason as shown, never in the
    // database (whose matches would show through the page's length and nextBefore); a page may come out shorter.
    const inDb = hidden !== null ? { ...input, reason: undefined } : input;
    const rows = await ctx.services.prisma.event.findMany({
      where: { ...eventWhere(inDb), ...(input.before ? { id: { lt: BigInt(input.before) } } : {}) },
      orderBy: { id: "desc" },
      take: input.limit + 1,
      select: ROW,
    });
    const views = rows.slice(0, input.limit).map((r) => view(r, hidden));
    const page = hidden !== null && input.reason ? views.filter((v) => matchesEvent(v, input)) : views;
    return { events: page, nextBefore: rows.length > input.limit ? views[views.length - 1].id : null };
  }),

  /** Upgrade steps on one node in a time range, newest first: the node's timeline shows them beside its events. */
  upgradeSteps: viewerProcedure
    .input(z.object({ node: nodeName, since: z.iso.datetime().optional(), until: z.iso.datetime().optional(), limit: z.number().int().min(1).max(200).default(50) }))
    .query(async ({ ctx, input }) => {
      const rows = await ctx.services.prisma.upgradeCommand.findMany({
        where: {
          node: input.node,
          ...(input.since || input.until ? { createdAt: { ...(input.since ? { gte: new Date(input.since) } : {}), ...(input.until ? { lte: new Date(input.until) } : {}) } } : {}),
        },
        orderBy: { createdAt: "desc" },
        take: input.limit,
        select: { id: true, upgradeId: true, action: true, status: true, requestedBy: true, params: true, createdAt: true, finishedAt: true },
      });
      return rows.map((r) => ({
        commandId: r.id,
        upgradeId: r.upgradeId,
        action: r.action,
        vsn: readParams(r.params).vsn ?? null,
        status: r.status,
        requestedBy: r.requestedBy,
        at: r.createdAt.getTime(),
        finishedAt: r.finishedAt?.getTime() ?? null,
      }));
    }),

  get: viewerProcedure.input(z.object({ id: z.string().regex(/^\d+$/) })).query(async ({ ctx, input }) => {
    const [r, hidden] = await Promise.all([ctx.services.prisma.event.findUnique({ where: { id: BigInt(input.id) } }), valuesHiddenFor(ctx.services.prisma, ctx.principal.role)]);
    if (!r) fail("BD_NOT_FOUND", `no event ${input.id}`);
    return { ...view(r, hidden), receivedAt: r.receivedAt.getTime(), raw: shownFrame(r, hidden), valuesHidden: hidden };
  }),

  /** New events as they are stored (optionally one node's). */
  onEvents: viewerProcedure.input(z.object({ node: nodeName.optional() }).optional()).subscription(async function* ({ ctx, input, signal }) {
    for await (const p of ctx.services.hub.subscribe("events", signal)) {
      const { node, events } = p as { node: string; events: EventView[] };
      if (input?.node && input.node !== node) continue;
      // Read per batch: an admin may change the rule while a tail is open.
      const hidden = await valuesHiddenFor(ctx.services.prisma, ctx.principal.role);
      yield hidden === null ? events : events.map(viewWithoutValues);
    }
  }),
});
