/** Processes of one node: windows of the live table, top-N, history, detail. */
import { z } from "zod";
import { agentFailure } from "../agents/agent-failure";
import { SORT_KEYS } from "../agents/process-table";
import { findByModule } from "../agents/find-processes";
import { valuesFor } from "../agents/process-values";
import { appendAudit } from "../audit/log";
import { actorOf } from "../auth/principal";
import { roleSchema } from "../auth/roles";
import { getSetting, setSetting } from "../storage/settings";
import { adminProcedure, router, viewerProcedure } from "../trpc";
import { connectedNode, liveNode, nodeName, pidText } from "./node-input";

export const procsRouter = router({
  window: viewerProcedure
    .input(
      z.object({
        node: nodeName,
        sort: z.enum(SORT_KEYS).default("mailbox"),
        desc: z.boolean().default(true),
        filter: z.string().max(200).optional(),
        offset: z.number().int().min(0).max(10_000_000).default(0),
        limit: z.number().int().min(1).max(1000).default(100),
      }),
    )
    .query(async ({ ctx, input }) => {
      const live = await liveNode(ctx, input.node);
      const needle = input.filter?.trim();
      // A filter also matches the modules on the stack and the callback module (asked of the agent, within its budget).
      const stack = needle && live.connected ? await findByModule(ctx.services.registry, input.node, live.hello.capabilities, needle) : null;
      const stackModules = new Map(stack?.matches.map((m) => [m.pid, m.modules]) ?? []);
      const also = stack ? { key: `${stack.scanned}/${stack.total}:${[...stackModules.keys()].sort().join(",")}`, pids: new Set(stackModules.keys()) } : undefined;
      const w = await live.processes.window({ ...input, also });
      // Marks from the latest old-code scan (every 10 s, and after each upgrade step).
      const rows = w.rows.map((r) => {
        const modules = ctx.services.oldCode.modulesOf(input.node, r.pid);
        return { ...r, oldCode: modules !== null, oldCodeModules: modules ?? [], stackMatch: stackModules.get(r.pid) ?? [] };
      });
      const stackSearch = stack ? { scanned: stack.scanned, total: stack.total, partial: stack.partial } : null;
      return { ...w, rows, stackSearch, version: live.processes.version, connected: live.connected };
    }),

  top: viewerProcedure
    .input(z.object({ node: nodeName, by: z.enum(["mailbox", "memory", "reductions"]).default("mailbox"), n: z.number().int().min(1).max(100).default(10) }))
    .query(async ({ ctx, input }) => (await liveNode(ctx, input.node)).processes.top(input.by, input.n)),

  /** Node-wide chart: the top mailboxes over the last minutes (≤ 1 point/s, ≤ 10 min). */
  history: viewerProcedure.input(z.object({ node: nodeName })).query(async ({ ctx, input }) => (await liveNode(ctx, input.node)).history.toArray()),

  /** One process's sparkline; asking starts tracking it. */
  series: viewerProcedure.input(z.object({ node: nodeName, pid: pidText })).query(async ({ ctx, input }) => {
    const live = await liveNode(ctx, input.node);
    live.track(input.pid);
    return live.seriesOf(input.pid);
  }),

  get: viewerProcedure.input(z.object({ node: nodeName, pid: pidText })).query(async ({ ctx, input }) => {
    const live = await liveNode(ctx, input.node);
    return live.processes.get(input.pid) ?? null;
  }),

  /** The leak rule's watch on this mailbox: growing since when, from how many, how fast (null: not watched). */
  growth: viewerProcedure.input(z.object({ node: nodeName, pid: pidText })).query(async ({ ctx, input }) => {
    await liveNode(ctx, input.node);
    return ctx.services.alerts.mailboxGrowth(input.node, input.pid);
  }),

  /**
   * Full detail, asked of the agent now (stack, monitors, dictionary, state
   * and messages where the agent sends them); values only for the roles the
   * `processes.valuesRole` setting allows.
   */
  detail: viewerProcedure.input(z.object({ node: nodeName, pid: pidText })).query(async ({ ctx, input }) => {
    await connectedNode(ctx, input.node);
    const [detail, least] = await Promise.all([
      ctx.services.registry.request(input.node, "process_detail", { pid: input.pid }, 5000).catch(agentFailure),
      getSetting(ctx.services.prisma, "processes.valuesRole"),
    ]);
    return valuesFor(detail, ctx.principal.role, least);
  }),

  /** The least role that sees process state, messages and dictionary values (the caller's own role beside it). */
  valuesRole: viewerProcedure.query(async ({ ctx }) => ({ least: await getSetting(ctx.services.prisma, "processes.valuesRole"), yours: ctx.principal.role })),

  setValuesRole: adminProcedure.input(z.object({ least: roleSchema })).mutation(async ({ ctx, input }) => {
    const actor = actorOf(ctx.principal);
    const before = await getSetting(ctx.services.prisma, "processes.valuesRole");
    await setSetting(ctx.services.prisma, "processes.valuesRole", input.least, actor);
    await appendAudit(ctx.services.prisma, { actor, action: "setting.update", target: "setting:processes.valuesRole", outcome: "ok", data: { before, after: input.least } });
    return { least: input.least };
  }),

  tree: viewerProcedure.input(z.object({ node: nodeName })).query(async ({ ctx, input }) => {
    const live = await liveNode(ctx, input.node);
    const scan = ctx.services.oldCode.snapshot(input.node);
    // Pids on old code, for marks in the tree (the scan lists at most 800 per node).
    const oldCode: Record<string, string[]> = {};
    for (const m of scan?.modules ?? []) for (const pid of m.pids) oldCode[pid] = [...(oldCode[pid] ?? []), m.module];
    return { at: live.treeAt, apps: live.tree ?? [], oldCode };
  }),

  /** The latest old-code scan of the node (modules, counts, since when). */
  oldCode: viewerProcedure.input(z.object({ node: nodeName })).query(async ({ ctx, input }) => {
    await liveNode(ctx, input.node);
    return ctx.services.oldCode.snapshot(input.node);
  }),
});
