/** Observer's system views of one node: overview over time, ETS tables, ports. */
import { z } from "zod";
import { AgentRequestError } from "../agents/session";
import { ETS_SORTS, etsTables, OVERVIEW_EVERY_MS, PORT_SORTS, portList } from "../agents/system-views";
import { fail } from "../errors";
import type { Context } from "../context";
import { router, viewerProcedure } from "../trpc";
import { connectedNode, liveNode, nodeName } from "./node-input";

const limit = z.number().int().min(1).max(1000).default(100);

/** One request to the agent, its reply parsed by its schema; failures as catalogued errors. */
async function ask<S extends z.ZodType>(ctx: Context, node: string, method: string, params: Record<string, unknown>, schema: S): Promise<z.infer<S>> {
  const live = await connectedNode(ctx, node);
  if (!live.hello.capabilities.includes("system")) fail("BD_AGENT_ERROR", `the agent on ${node} (version ${live.hello.agentVersion}) has no system views; upgrade the agent`);
  let reply: unknown;
  try {
    reply = await ctx.services.registry.request(node, method, params, 5000);
  } catch (e) {
    if (e instanceof AgentRequestError) {
      if (e.code === "timeout") fail("BD_AGENT_TIMEOUT", e.message);
      if (e.code === "disconnected") fail("BD_NODE_OFFLINE", e.message);
      fail("BD_AGENT_ERROR", `${e.code}: ${e.message}`);
    }
    throw e;
  }
  const parsed = schema.safeParse(reply);
  if (!parsed.success) fail("BD_AGENT_ERROR", `the agent's ${method} reply does not match the protocol: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
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
    .query(({ ctx, input }) => ask(ctx, input.node, "ets_tables", { sort: input.sort, limit: input.limit }, etsTables)),

  ports: viewerProcedure
    .input(z.object({ node: nodeName, sort: z.enum(PORT_SORTS).default("io"), limit }))
    .query(({ ctx, input }) => ask(ctx, input.node, "ports", { sort: input.sort, limit: input.limit }, portList)),
});
