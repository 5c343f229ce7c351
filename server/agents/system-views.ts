/**
 * Observer's system views (docs/protocol.md, "System views"): the schemas of
 * the agent's `system_overview`, `ets_tables` and `ports` replies, and the
 * watcher that keeps an hour of overviews per node for the charts.
 *
 * Only the watcher asks for overviews, every OVERVIEW_EVERY_MS, so that the
 * agent's scheduler utilisation always covers one even window; readers get
 * the stored samples. ETS and port lists are asked for on demand (bounded
 * by the agent: at most 1000 rows, 100k scanned).
 */
import { z } from "zod";
import { bigCount, safeCount } from "./protocol";
import type { LiveNode } from "./live-node";
import { NodePoller } from "./node-poller";
import type { AgentRegistry } from "./registry";
import { Ring } from "./ring";

/** Bytes and milliseconds stay below 2^53; counters that may pass it (reductions, GC) stay exact (protocol.ts). */
const big = safeCount;
const n = z.number().int().nonnegative();
const countLimit = z.object({ count: n, limit: n });
const text = z.string().max(1024);

export const systemOverview = z.object({
  at: z.number().int(),
  uptimeMs: big,
  otpRelease: text,
  schedulers: n,
  schedulersOnline: n,
  dirtyCpuSchedulers: n,
  memory: z.object({ total: big, processes: big, processesUsed: big, system: big, atom: big, atomUsed: big, binary: big, code: big, ets: big }),
  counts: z.object({ processes: countLimit, ports: countLimit, atoms: countLimit, ets: countLimit }),
  runQueue: n,
  runQueues: z.array(n).max(1024),
  schedulerUtilization: z.object({ total: z.number().min(0).max(1), perScheduler: z.array(z.number().min(0).max(1)).max(1024) }).nullable(),
  io: z.object({ input: big, output: big }),
  gc: z.object({ count: bigCount, wordsReclaimed: bigCount }),
  reductions: bigCount,
  contextSwitches: bigCount,
});
export type SystemOverview = z.infer<typeof systemOverview>;

export const ETS_SORTS = ["memory", "size", "name"] as const;
export const etsTables = z.object({
  total: n,
  scanned: n,
  partial: z.boolean(),
  wordSize: n,
  tables: z
    .array(
      z.object({
        id: text,
        name: text,
        named: z.boolean(),
        owner: text.nullable(),
        ownerName: text.nullable(),
        heir: text.nullable(),
        type: z.enum(["set", "ordered_set", "bag", "duplicate_bag"]),
        protection: z.enum(["public", "protected", "private"]),
        size: n,
        memory: n,
        compressed: z.boolean(),
        readConcurrency: z.boolean(),
        writeConcurrency: z.union([z.boolean(), z.string().max(32)]),
      }),
    )
    .max(1000),
});
export type EtsTables = z.infer<typeof etsTables>;

export const PORT_SORTS = ["io", "input", "output", "name"] as const;
export const portList = z.object({
  total: n,
  scanned: n,
  partial: z.boolean(),
  ports: z
    .array(
      z.object({
        id: text,
        name: text,
        kind: z.enum(["tcp", "udp", "sctp", "file", "spawn", "fd", "other"]),
        owner: text.nullable(),
        ownerName: text.nullable(),
        osPid: n.nullable(),
        input: big,
        output: big,
        io: big,
        local: text.nullable(),
        peer: text.nullable(),
      }),
    )
    .max(1000),
});
export type PortList = z.infer<typeof portList>;

export const OVERVIEW_EVERY_MS = 5000;
/** An hour of overviews at one per OVERVIEW_EVERY_MS. */
const HISTORY = 720;

/** Polls every connected agent that announces the `system` capability. */
export class SystemWatch {
  private readonly rings = new Map<string, Ring<SystemOverview>>();
  private readonly poller: NodePoller;

  constructor(
    private readonly registry: AgentRegistry,
    everyMs = OVERVIEW_EVERY_MS,
  ) {
    this.poller = new NodePoller(
      registry,
      everyMs,
      (node) => this.ask(node, Math.min(3000, everyMs)),
      (known) => {
        // Nodes the registry forgot (offline for long) lose their history too.
        for (const name of this.rings.keys()) if (!known.has(name)) this.rings.delete(name);
      },
    );
  }

  start(): void {
    this.poller.start();
  }

  stop(): void {
    this.poller.stop();
  }

  history(node: string): SystemOverview[] {
    return this.rings.get(node)?.toArray() ?? [];
  }

  private async ask(node: LiveNode, timeoutMs: number): Promise<void> {
    if (!node.hello.capabilities.includes("system")) return;
    const bootId = node.hello.bootId;
    // A bad reply throws (the poller skips it: nothing stored); counters restart with a new boot.
    const overview = await this.registry.request(node.name, "system_overview", {}, timeoutMs);
    if (node.hello.bootId !== bootId) return;
    let ring = this.rings.get(node.name);
    const last = ring?.last();
    if (!ring || (last && overview.uptimeMs < last.uptimeMs)) {
      ring = new Ring<SystemOverview>(HISTORY);
      this.rings.set(node.name, ring);
    }
    ring.push(overview);
  }
}
