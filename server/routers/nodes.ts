/** Nodes: the list, one node's summary, and its live-change stream. */
import { z } from "zod";
import { listNodes } from "../agents/node-listing";
import { type NodeSummary, nodeSnapshot, staleAfter } from "../gateway/owner-snapshot";
import { router, viewerProcedure } from "../trpc";
import { liveNode, nodeName } from "./node-input";

export const nodesRouter = router({
  list: viewerProcedure.query(({ ctx }) => listNodes(ctx.services)),

  get: viewerProcedure.input(z.object({ node: nodeName })).query(async ({ ctx, input }) => {
    const live = await liveNode(ctx, input.node);
    const h = live.hello;
    const row = await ctx.services.prisma.node.findUnique({ where: { name: input.node }, select: { boundTokenId: true } });
    return {
      ...live.summary(),
      boundTokenId: row?.boundTokenId ?? null,
      systemVersion: h.systemVersion ?? null,
      distributed: h.distributed ?? null,
      startedAt: h.startedAt ?? null,
      processLimit: h.processLimit ?? null,
      schedulers: h.schedulers ?? null,
      applications: h.applications,
      releases: h.releases,
      capabilities: h.capabilities,
      getStateEnabled: Boolean(h.config?.getState),
    };
  }),

  /** A node connected or disconnected: yields {node, connected}. */
  onNodes: viewerProcedure.subscription(async function* ({ ctx, signal }) {
    for await (const change of ctx.services.hub.subscribe("nodes", signal)) yield change as { node: string; connected: boolean };
  }),

  /** One node's summary: the live one here, or its owner's (forwarded), for the first item of `onNode` elsewhere. */
  summary: viewerProcedure.input(z.object({ node: nodeName })).query(async ({ ctx, input }) => (await liveNode(ctx, input.node)).summary()),

  /**
   * One node's live data changed (coalesced to ≤ 4/s): yields its summary,
   * first the current one, even when another instance holds the node.
   */
  onNode: viewerProcedure.input(z.object({ node: nodeName })).subscription(async function* ({ ctx, input, signal }) {
    // Subscribe before reading the snapshot: a change made meanwhile waits in the queue.
    const updates = ctx.services.hub.subscribe(`node:${input.node}`, signal, 4);
    let snapshot = await nodeSnapshot(ctx, input.node);
    if (snapshot) yield snapshot;
    // The hub's channels are untyped; `node:NAME` carries only LiveNode summaries (its publishers).
    for await (const s of updates as AsyncIterable<NodeSummary>) {
      if (snapshot && staleAfter(snapshot, s)) continue;
      snapshot = null;
      yield s;
    }
  }),
});
