/**
 * Many synthetic agents at once, bounded: started a few at a time, each
 * reconnecting on its own (the next endpoint, backoff), all stopped by
 * `stop`. Counts what was sent and acknowledged, per node, so a caller can
 * compare it with what the server stored.
 *
 * @module
 */
import { SyntheticAgent } from "./agent";
import type { LoadgenOptions } from "./options";

export interface NodeSummary {
  node: string;
  bootId: string;
  /** Events produced (seq 1..eventsProduced). */
  events: number;
  acked: number;
  dropped: number;
  welcomes: number;
  url: string | null;
}

export interface FleetSummary {
  agents: number;
  connected: number;
  procsPerAgent: number;
  eventsProduced: number;
  eventsAcked: number;
  eventsDropped: number;
  reconnects: number;
  framesSent: Record<string, number>;
  nodes: NodeSummary[];
}

export type FleetOptions = Pick<LoadgenOptions, "url" | "token" | "agents" | "procs" | "interval" | "churn" | "eventsPerSecond" | "prefix" | "concurrency" | "group">;

export class Fleet {
  readonly agents: SyntheticAgent[];
  private stopped = false;

  constructor(private readonly o: FleetOptions) {
    this.agents = Array.from(
      { length: o.agents },
      (_v, i) =>
        new SyntheticAgent({
          url: o.url,
          token: o.token,
          node: `${o.prefix}_${i}@loadgen`,
          processCount: o.procs,
          intervalMs: o.interval,
          churn: o.churn,
          eventsPerSecond: o.eventsPerSecond,
          reconnect: true,
          // Spread over the endpoints, as a fleet whose agents list them in different orders.
          firstEndpoint: i,
          group: o.group,
        }),
    );
  }

  /** Starts every agent, `concurrency` at a time; resolves when all are welcomed or `timeoutMs` passed (the rest keep trying). */
  async start(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < this.agents.length && !this.stopped; i += this.o.concurrency) {
      const batch = this.agents.slice(i, i + this.o.concurrency);
      for (const a of batch) a.start();
      while (!this.stopped && Date.now() < deadline && batch.some((a) => !a.connected)) await sleep(50);
    }
    while (!this.stopped && Date.now() < deadline && this.connected() < this.agents.length) await sleep(100);
    return this.connected();
  }

  connected(): number {
    return this.agents.filter((a) => a.connected).length;
  }

  /** Waits (bounded) until every produced event is acknowledged. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const pending = () => this.agents.some((a) => a.eventsAcked < a.eventsProduced);
    while (pending() && Date.now() < deadline) await sleep(100);
    return !pending();
  }

  /** Stops producing events (deltas go on), so `drain` can finish. */
  quiet(): void {
    for (const a of this.agents) a.pauseEvents();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.agents.map((a) => a.disconnect()));
  }

  summary(): FleetSummary {
    const framesSent: Record<string, number> = {};
    for (const a of this.agents) for (const [k, v] of Object.entries(a.sent)) framesSent[k] = (framesSent[k] ?? 0) + v;
    const nodes = this.agents.map((a) => ({ node: a.node, bootId: a.bootId, events: a.eventsProduced, acked: a.eventsAcked, dropped: a.eventsDropped, welcomes: a.welcomes, url: a.connectedUrl }));
    const sum = (f: (n: NodeSummary) => number) => nodes.reduce((s, n) => s + f(n), 0);
    return {
      agents: this.agents.length,
      connected: this.connected(),
      procsPerAgent: this.o.procs,
      eventsProduced: sum((n) => n.events),
      eventsAcked: sum((n) => Math.min(n.acked, n.events)),
      eventsDropped: sum((n) => n.dropped),
      reconnects: sum((n) => Math.max(0, n.welcomes - 1)),
      framesSent,
      nodes,
    };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
