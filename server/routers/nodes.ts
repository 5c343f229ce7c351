/** Nodes: the list, one node's summary, and its live-change stream. */
import { z } from "zod";
import { readStoredHello } from "../agents/protocol";
import { router, viewerProcedure } from "../trpc";
import { liveNode, nodeName } from "./node-input";

export const nodesRouter = router({
  list: viewerProcedure.query(async ({ ctx }) => {
    const rows = await ctx.services.prisma.node.findMany({ orderBy: { name: "asc" }, take: 1000 });
    const mine = ctx.services.instanceId;
    const now = Date.now();
    return rows.map((r) => {
      const live = ctx.services.registry.live(r.name);
      const s = live?.summary();
      const hello = readStoredHello(r.hello);
      const releases = live?.hello.releases ?? hello.releases ?? null;
      const release = releases?.find((x) => x.status === "current") ?? releases?.find((x) => x.status === "permanent") ?? null;
      const oldCode = s?.connected ? ctx.services.oldCode.snapshot(r.name) : null;
      return {
        name: r.name,
        // Elsewhere: only while that instance's lease is unexpired (a killed instance's nodes are not connected).
        connected: s?.connected ?? (r.connectedAt !== null && r.instanceId !== null && (r.leaseExpiresAt?.getTime() ?? 0) > now),
        connectedHere: Boolean(s?.connected),
        instance: r.instanceId && r.instanceId !== mine ? r.instanceId : null,
        lastSeenAt: s && s.connected ? Date.now() : (s?.disconnectedAt ?? r.lastSeenAt.getTime()),
        connectedSince: s?.connected ? s.connectedAt : (r.connectedAt?.getTime() ?? null),
        firstSeenAt: r.firstSeenAt.getTime(),
        otpRelease: s?.otpRelease ?? r.otpRelease,
        ertsVersion: s?.ertsVersion ?? hello.ertsVersion ?? null,
        agentVersion: s?.agentVersion ?? r.agentVersion,
        processCount: s?.processCount ?? hello.processCount ?? null,
        topMailbox: s?.topMailbox ?? null,
        boundTokenId: r.boundTokenId,
        release: release ? { name: release.name, vsn: release.vsn } : null,
        /** Processes on old code (null: not scanned yet, or not connected here). */
        oldCode: oldCode ? oldCode.total : null,
      };
    });
  }),

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

  /** One node's live data changed (coalesced to ≤ 4/s): yields its summary. */
  onNode: viewerProcedure.input(z.object({ node: nodeName })).subscription(async function* ({ ctx, input, signal }) {
    const updates = ctx.services.hub.subscribe(`node:${input.node}`, signal, 4);
    const live = ctx.services.registry.live(input.node);
    if (live) yield live.summary();
    for await (const s of updates) yield s as ReturnType<NonNullable<typeof live>["summary"]>;
  }),
});
