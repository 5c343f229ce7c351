/**
 * Asks every connected agent something on a fixed period, at most one
 * request per node in flight, and tells the owner which nodes the registry
 * has forgotten so that their state can go too. Used by the system-view and
 * old-code watchers.
 */
import type { AgentRegistry } from "./registry";
import type { LiveNode } from "./live-node";

export class NodePoller {
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly registry: AgentRegistry,
    private readonly everyMs: number,
    /** Ask one connected node; a rejection is a gap, nothing more. */
    private readonly ask: (node: LiveNode) => Promise<void>,
    /** Called with the names the registry still knows, after each round. */
    private readonly forgetOthers: (known: Set<string>) => void,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.poll(), this.everyMs);
    this.timer.unref();
    this.poll();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Ask one node now (unless a request to it is already under way). */
  async now(name: string): Promise<void> {
    const node = this.registry.live(name);
    if (!node?.connected || this.inFlight.has(name)) return;
    this.inFlight.add(name);
    try {
      await this.ask(node);
    } catch {
      /* not answered in time: the previous state stands until the next round */
    } finally {
      this.inFlight.delete(name);
    }
  }

  private poll(): void {
    const known = new Set<string>();
    for (const node of this.registry.liveNodes()) {
      known.add(node.name);
      void this.now(node.name);
    }
    this.forgetOthers(known);
  }
}
