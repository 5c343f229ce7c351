/** Observer's system views of one node: overview over time, ETS tables, ports. */
import { z } from "zod";
import { agentFailure } from "../agents/agent-failure";
import { ETS_SORTS, OVERVIEW_EVERY_MS, PORT_SORTS } from "../agents/system-views";
import { fail } from "../errors";
import type { Context } from "../context";
import { router, viewerProcedure } from "../trpc";
import { connectedNode, liveNode, nodeName } from "./node-input";

const limit = z.number().int().min(1).max(1000).default(100);

/** One request to an agent with system views; its reply is parsed by the registry (replies.ts). */
async function ask<M extends "ets_tables" | "ports">(ctx: Context, node: string, method: M, params: Record<string, unknown>) {
  const live = await connectedNode(ctx, node);
  if (!live.hello.capabilities.includes("system")) fail("BD_AGENT_ERROR", `the agent on ${node} (version ${live.hello.agentVersion}) has no system views; upgrade the agent`);
  return ctx.services.registry.request(node, method, params, 5000).catch(agentFailure);
}

export const systemRouter = router({
  /** The overviews of the last hour (one per 5 s), newest last; empty until the first arrives. */
  overview: viewerProcedure.input(z.object({ node: nodeName })).query(async ({ ctx, input }) => {
    const live = await liveNode(ctx, input.node);
    const history = ctx.services.system.history(input.node);
    return {
      connected: live.connected,
      supported: live.hello.capabilities.includes("system"),
      everyMs: OVERVIEW_EVERY_MS,
      latest: history.at(-1) ?? null,
      history,
    };
  }),

  ets: viewerProcedure
    .input(z.object({ node: nodeName, sort: z.enum(ETS_SORTS).default("memory"), limit }))
    .query(({ ctx, input }) => ask(ctx, input.node, "ets_tables", { sort: input.sort, limit: input.limit })),

  ports: viewerProcedure
    .input(z.object({ node: nodeName, sort: z.enum(PORT_SORTS).default("io"), limit }))
    .query(({ ctx, input }) => ask(ctx, input.node, "ports", { sort: input.sort, limit: input.limit })),
});
