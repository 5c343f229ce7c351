/** Rolling upgrades of a group: read (viewers), start/halt/resume/abort (operators), live state. */
import { createHash } from "node:crypto";
import { tracked } from "@trpc/server";
import { z } from "zod";
import { actorOf } from "../auth/principal";
import { rolloutId, startInput } from "../fleet/rollout-options";
import { listRollouts, mustReadRollout, type RolloutView } from "../fleet/rollout-store";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

const byId = z.object({ id: rolloutId });

/** One version of a rollout's state: what changes when anything on the page would. */
function versionOf(r: RolloutView): string {
  const h = createHash("sha256").update(r.updatedAt);
  for (const n of r.nodes) h.update(`|${n.updatedAt}`);
  return `r-${h.digest("hex").slice(0, 24)}`;
}

export const rolloutsRouter = router({
  list: viewerProcedure.input(z.object({ limit: z.number().int().min(1).max(100).default(20) }).default({ limit: 20 })).query(({ ctx, input }) => listRollouts(ctx.services.prisma, input.limit)),

  get: viewerProcedure.input(byId).query(({ ctx, input }) => mustReadRollout(ctx.services.prisma, input.id)),

  start: operatorProcedure.input(startInput).mutation(async ({ ctx, input }) => ({ id: await ctx.services.rollouts.begin(input, actorOf(ctx.principal)) })),

  halt: operatorProcedure
    .input(byId.extend({ reason: z.string().max(500).optional() }))
    .mutation(({ ctx, input }) =>
      ctx.services.rollouts.halt(input.id, actorOf(ctx.principal), input.reason ? `halted by ${actorOf(ctx.principal)}: ${input.reason}` : `halted by ${actorOf(ctx.principal)}`),
    ),

  resume: operatorProcedure.input(byId).mutation(({ ctx, input }) => ctx.services.rollouts.resume(input.id, actorOf(ctx.principal))),

  abort: operatorProcedure.input(byId).mutation(({ ctx, input }) => ctx.services.rollouts.abort(input.id, actorOf(ctx.principal))),

  /** The rollout, pushed on every change; resumable (`lastEventId`: the last version the client has). */
  onChange: viewerProcedure.input(byId.extend({ lastEventId: z.string().max(64).nullish() })).subscription(async function* ({ ctx, input, signal }) {
    // Subscribed before the first read: a change in between is not missed.
    const changes = ctx.services.hub.subscribe(`rollout:${input.id}`, signal, 16);
    let last = input.lastEventId ?? null;
    const read = async () => {
      const r = await mustReadRollout(ctx.services.prisma, input.id);
      const v = versionOf(r);
      if (v === last) return null;
      last = v;
      return tracked(v, r);
    };
    const first = await read();
    if (first) yield first;
    for await (const _ of changes) {
      const next = await read();
      if (next) yield next;
    }
  }),
});
