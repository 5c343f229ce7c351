/**
 * Processes left on old code, watched on every node (issue 14, "old code is
 * visible everywhere"): the schema of the agent's `old_code` reply and a
 * watcher that asks every OLD_CODE_EVERY_MS, remembers since when each
 * module has had processes on its old code, and answers which pids are on
 * old code for the process table, the tree, the nodes list, /metrics and the
 * `old_code` alert rule.
 *
 * The agent's scan is cheap when nothing has old code (one check per loaded
 * module); with old code, one full check_process_code pass, then each poll
 * re-checks only the pids on old code and new processes, with a full pass
 * again every `old_code_rescan_ms` (60 s) or when the old code changes.
 */
import { z } from "zod";
import type { LiveNode } from "../agents/live-node";
import { NodePoller } from "../agents/node-poller";
import type { AgentRegistry } from "../agents/registry";

const n = z.number().int().nonnegative();
const text = z.string().max(1024);

export const oldCodeReply = z.object({
  at: z.number().int(),
  total: n,
  processes: n,
  elapsedUs: n.optional(),
  /** Which pass answered: none (no old code), a full one, or the incremental re-check. */
  scan: z.enum(["none", "full", "incremental"]).optional(),
  modules: z
    .array(
      z.object({
        module: text,
        hasOldCode: z.boolean(),
        count: n,
        truncated: z.boolean(),
        processes: z.array(z.object({ pid: text, name: text.nullable(), initialCall: text.nullable(), currentFunction: text.nullable() })).max(100_000),
      }),
    )
    .max(100_000),
});
export type OldCodeReply = z.infer<typeof oldCodeReply>;

export const OLD_CODE_EVERY_MS = 10_000;

export interface OldCodeModule {
  module: string;
  count: number;
  truncated: boolean;
  /** When this module was first seen with processes on its old code (this run of the watch). */
  since: number;
  pids: string[];
}

export interface OldCodeSnapshot {
  at: number;
  total: number;
  modules: OldCodeModule[];
}

export class OldCodeWatch {
  private readonly snapshots = new Map<string, OldCodeSnapshot & { bootId: string; byPid: Map<string, string[]> }>();
  private readonly poller: NodePoller;

  constructor(
    private readonly registry: AgentRegistry,
    everyMs = OLD_CODE_EVERY_MS,
  ) {
    this.poller = new NodePoller(
      registry,
      everyMs,
      (node) => this.ask(node),
      (known) => {
        for (const name of this.snapshots.keys()) if (!known.has(name)) this.snapshots.delete(name);
      },
    );
    // An upgrade step just finished: the marks should not wait for the next round.
    registry.onAgentFrame((node, frame) => {
      if (frame.type === "command_result") void this.poller.now(node);
    });
  }

  start(): void {
    this.poller.start();
  }

  stop(): void {
    this.poller.stop();
  }

  /** The latest scan of a node, or null before the first (or for an agent without upgrades). */
  snapshot(node: string): OldCodeSnapshot | null {
    const s = this.snapshots.get(node);
    return s ? { at: s.at, total: s.total, modules: s.modules } : null;
  }

  /** Modules whose old code the process runs, or null (as of the latest scan). */
  modulesOf(node: string, pid: string): string[] | null {
    return this.snapshots.get(node)?.byPid.get(pid) ?? null;
  }

  private async ask(node: LiveNode): Promise<void> {
    if (!node.hello.capabilities.includes("upgrade")) return;
    const bootId = node.hello.bootId;
    // A bad reply throws (the poller skips it: the previous scan stays).
    const scan = await this.registry.request(node.name, "old_code", {}, 5000);
    if (node.hello.bootId !== bootId) return;
    const prev = this.snapshots.get(node.name);
    const sameBoot = prev?.bootId === bootId;
    const now = Date.now();
    const byPid = new Map<string, string[]>();
    const modules: OldCodeModule[] = [];
    for (const m of scan.modules) {
      if (m.count === 0) continue;
      const before = sameBoot ? prev?.modules.find((x) => x.module === m.module) : undefined;
      const pids = m.processes.map((p) => p.pid);
      for (const pid of pids) byPid.set(pid, [...(byPid.get(pid) ?? []), m.module]);
      modules.push({ module: m.module, count: m.count, truncated: m.truncated, since: before?.since ?? now, pids });
    }
    this.snapshots.set(node.name, { at: scan.at, total: scan.total, modules, bootId, byPid });
  }
}
