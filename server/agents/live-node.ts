/**
 * Everything this server instance knows live about one node: the agent's
 * hello, the process table, the supervision trees and short histories for
 * the charts. Held only by the instance that holds the agent's socket.
 */
import type { HelloFrame, ProcsFrame, TreeApp } from "./protocol";
import { ProcessTable } from "./process-table";
import { Ring } from "./ring";
import { displayName } from "./process-table";

/** One point of the node-wide chart: the top mailboxes at one instant. */
export interface MailboxSample {
  at: number;
  processCount: number;
  totalMemory: number;
  /** `name`: the registered name; `label`: what a legend shows (see `displayName`). */
  top: { pid: string; name: string | null; label: string | null; mailbox: number }[];
}

export interface ProcessPoint {
  at: number;
  mailbox: number;
  memory: number;
}

export const HISTORY_SECONDS = 600;
const TOP_N_CHART = 10;
const TRACKED_MAX = 500;

export class LiveNode {
  readonly processes = new ProcessTable();
  hello: HelloFrame;
  connectedAt: number;
  disconnectedAt: number | null = null;
  lastFrameAt: number;
  tree: TreeApp[] | null = null;
  treeAt: number | null = null;
  stats: ProcsFrame["stats"] | null = null;
  /** The agent sends only its top-N and watched processes (its node is over the record cap). */
  partial = false;
  readonly history = new Ring<MailboxSample>(HISTORY_SECONDS);
  /** Per-process series for processes that were in a top list or were asked for. */
  private readonly series = new Map<string, Ring<ProcessPoint>>();
  private lastSampleAt = 0;

  constructor(
    readonly name: string,
    hello: HelloFrame,
  ) {
    this.hello = hello;
    this.connectedAt = Date.now();
    this.lastFrameAt = this.connectedAt;
  }

  get connected(): boolean {
    return this.disconnectedAt === null;
  }

  reconnected(hello: HelloFrame): void {
    if (hello.bootId !== this.hello.bootId) {
      // A new boot: pids of the old one mean nothing any more.
      this.processes.clear();
      this.tree = null;
      this.series.clear();
    }
    this.hello = hello;
    this.connectedAt = Date.now();
    this.disconnectedAt = null;
  }

  applyProcs(frame: ProcsFrame): void {
    this.processes.apply(frame);
    if (frame.reset || frame.partial !== undefined) this.partial = frame.partial ?? false;
    if (frame.stats) this.stats = frame.stats;
    this.lastFrameAt = Date.now();
    this.sample();
  }

  applyTree(apps: TreeApp[], at: number): void {
    this.tree = apps;
    this.treeAt = at;
  }

  /** At most one history point per second. */
  private sample(): void {
    const now = Date.now();
    if (now - this.lastSampleAt < 1000) return;
    this.lastSampleAt = now;
    const top = this.processes.top("mailbox", TOP_N_CHART);
    let totalMemory = 0;
    for (const p of this.processes.values()) totalMemory += p.memory;
    this.history.push({
      at: now,
      processCount: this.processes.size,
      totalMemory,
      top: top.filter((p) => p.mailbox > 0).map((p) => ({ pid: p.pid, name: p.name, label: displayName(p), mailbox: p.mailbox })),
    });
    for (const p of top) this.track(p.pid);
    for (const p of this.processes.top("memory", TOP_N_CHART)) this.track(p.pid);
    for (const [pid, ring] of this.series) {
      const p = this.processes.get(pid);
      if (p) ring.push({ at: now, mailbox: p.mailbox, memory: p.memory });
      else if ((ring.last()?.at ?? 0) < now - HISTORY_SECONDS * 1000) this.series.delete(pid);
    }
  }

  /** Start keeping a sparkline for a process (bounded: the oldest tracked goes first). */
  track(pid: string): void {
    if (this.series.has(pid)) return;
    if (this.series.size >= TRACKED_MAX) {
      const oldest = this.series.keys().next().value;
      if (oldest !== undefined) this.series.delete(oldest);
    }
    this.series.set(pid, new Ring<ProcessPoint>(HISTORY_SECONDS));
  }

  seriesOf(pid: string): ProcessPoint[] {
    return this.series.get(pid)?.toArray() ?? [];
  }

  summary() {
    const top = this.processes.top("mailbox", 1)[0];
    return {
      name: this.name,
      connected: this.connected,
      connectedAt: this.connectedAt,
      disconnectedAt: this.disconnectedAt,
      lastFrameAt: this.lastFrameAt,
      bootId: this.hello.bootId,
      otpRelease: this.hello.otpRelease,
      ertsVersion: this.hello.ertsVersion,
      agentVersion: this.hello.agentVersion,
      // A partial table holds only the hot spots; the agent's count is the node's.
      processCount: this.partial ? this.processes.reportedTotal : this.processes.size || this.hello.processCount,
      topMailbox: top ? { pid: top.pid, name: top.name, mailbox: top.mailbox } : null,
      stats: this.stats,
      partial: this.partial,
      version: this.processes.version,
    };
  }
}
