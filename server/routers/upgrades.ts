/** Hot upgrades of one node: review (viewers), run steps (operators). */
import { z } from "zod";
import { actorOf } from "../auth/principal";
import { fail } from "../errors";
import { operatorProcedure, router, viewerProcedure } from "../trpc";
import { gateInput, type Gate } from "../upgrades/gate";
import { fallbackMsInput } from "../upgrades/fallback";
import { historyFeed } from "../upgrades/history-feed";
import { purgeChoices } from "../upgrades/plan";
import { connectedNode, nodeName } from "./node-input";

const vsn = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\w.+-]+$/, "a release version like 0.1.1");
const choices = { purge: purgeChoices.default({}), prePurge: purgeChoices.default({}) };
/** Typed confirmation: the node's name, as the operator typed it. */
const confirm = z.string().max(255);

/** A step's command id, made by the caller so it can follow the step before sending it (docs/cli.md). */
const commandId = z.string().regex(/^c-[0-9a-f-]{36}$/, "c- and a UUID");
const stepId = z.object({ commandId: commandId.optional() });
function gateOf(input: Gate): Gate {
  return { acceptPlan: input.acceptPlan, maxKills: input.maxKills, acceptFindings: input.acceptFindings };
}

function confirmed(node: string, typed: string): void {
  if (typed !== node) fail("BD_BAD_INPUT", `type the node's name (${node}) to confirm`);
}

export const upgradesRouter = router({
  /** Release state; with `vsn`, also the path to it: relup script and appups per application. */
  releases: viewerProcedure.input(z.object({ node: nodeName, vsn: vsn.optional() })).query(async ({ ctx, input }) => {
    await connectedNode(ctx, input.node);
    return ctx.services.upgrades.releases(input.node, input.vsn);
  }),

  plan: viewerProcedure.input(z.object({ node: nodeName, vsn, ...choices })).query(async ({ ctx, input }) => {
    await connectedNode(ctx, input.node);
    return ctx.services.upgrades.plan(input.node, input.vsn, input.purge, input.prePurge);
  }),

  oldCode: viewerProcedure.input(z.object({ node: nodeName })).query(async ({ ctx, input }) => {
    await connectedNode(ctx, input.node);
    return ctx.services.upgrades.oldCode(input.node);
  }),

  history: viewerProcedure.input(z.object({ node: nodeName, limit: z.number().int().min(1).max(100).default(20) })).query(({ ctx, input }) => ctx.services.upgrades.history(input.node, input.limit)),

  /** The history, pushed on every change; resumable (`lastEventId` is the last version the client has). */
  onHistory: viewerProcedure.input(z.object({ node: nodeName, limit: z.number().int().min(1).max(100).default(20), lastEventId: z.string().max(64).nullish() })).subscription(async function* ({
    ctx,
    input,
    signal,
  }) {
    yield* historyFeed(ctx.services, input.node, input.limit, input.lastEventId, signal);
  }),

  /** One command's status and outcome (a step without an upgrade, such as unpack, is in no upgrade's history). */
  command: viewerProcedure.input(z.object({ node: nodeName, commandId })).query(({ ctx, input }) => ctx.services.upgrades.command(input.node, input.commandId)),

  unpack: operatorProcedure
    .input(stepId)
    .input(z.object({ node: nodeName, vsn }))
    .mutation(async ({ ctx, input }) => {
      await connectedNode(ctx, input.node);
      return ctx.services.upgrades.run({ actor: actorOf(ctx.principal), node: input.node, action: "unpack", vsn: input.vsn, commandId: input.commandId });
    }),

  install: operatorProcedure
    .input(stepId)
    .input(z.object({ node: nodeName, vsn, ...choices, confirmNode: confirm, ...gateInput, fallbackMs: fallbackMsInput.optional() }))
    .mutation(async ({ ctx, input }) => {
      confirmed(input.node, input.confirmNode);
      await connectedNode(ctx, input.node);
      return ctx.services.upgrades.run({
        actor: actorOf(ctx.principal),
        node: input.node,
        action: "install",
        vsn: input.vsn,
        purge: input.purge,
        prePurge: input.prePurge,
        gate: gateOf(input),
        commandId: input.commandId,
        fallbackMs: input.fallbackMs,
      });
    }),

  makePermanent: operatorProcedure
    .input(stepId)
    .input(z.object({ node: nodeName, upgradeId: z.string().max(64).optional(), confirmNode: confirm, ...gateInput }))
    .mutation(async ({ ctx, input }) => {
      confirmed(input.node, input.confirmNode);
      await connectedNode(ctx, input.node);
      return ctx.services.upgrades.run({ actor: actorOf(ctx.principal), node: input.node, action: "make_permanent", upgradeId: input.upgradeId, gate: gateOf(input), commandId: input.commandId });
    }),

  rollback: operatorProcedure
    .input(stepId)
    .input(z.object({ node: nodeName, upgradeId: z.string().max(64).optional(), confirmNode: confirm, ...choices, ...gateInput }))
    .mutation(async ({ ctx, input }) => {
      confirmed(input.node, input.confirmNode);
      await connectedNode(ctx, input.node);
      return ctx.services.upgrades.run({
        actor: actorOf(ctx.principal),
        node: input.node,
        action: "rollback",
        upgradeId: input.upgradeId,
        purge: input.purge,
        prePurge: input.prePurge,
        gate: gateOf(input),
        commandId: input.commandId,
      });
    }),

  /** Progress and results of this node's steps, live; with `commandId`, that step's only, ending with its (possibly already recorded) result. */
  onProgress: viewerProcedure.input(z.object({ node: nodeName, commandId: commandId.optional() })).subscription(async function* ({ ctx, input, signal }) {
    yield* ctx.services.upgrades.progress(input.node, input.commandId, signal);
  }),
});
