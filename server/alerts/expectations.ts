/**
 * Kills an approved upgrade predicted. While an upgrade step runs on a node,
 * a child_terminated for a predicted pid is expected (recorded, no page);
 * any other kill in that window is a prediction miss (pages, and says so).
 * Held by the instance that holds the node's socket, like the step itself.
 */
export interface Expectation {
  upgradeId: string;
  pids: Set<string>;
  until: number;
}

export class Expectations {
  private readonly byNode = new Map<string, Expectation>();

  expect(node: string, upgradeId: string, pids: string[], windowMs: number): void {
    const prev = this.byNode.get(node);
    const all = new Set([...(prev?.upgradeId === upgradeId ? prev.pids : []), ...pids]);
    this.byNode.set(node, { upgradeId, pids: all, until: Date.now() + windowMs });
  }

  /** Keep the window open a little after the step ends: reports trail the result. */
  extend(node: string, ms: number): void {
    const e = this.byNode.get(node);
    if (e) e.until = Math.max(e.until, Date.now() + ms);
  }

  clear(node: string): void {
    this.byNode.delete(node);
  }

  /** `expected` with the upgrade, `miss` if an upgrade window is open but the pid was not predicted, else null. */
  classify(node: string, pid: string | null, now = Date.now()): { verdict: "expected" | "miss"; upgradeId: string } | null {
    const e = this.byNode.get(node);
    if (!e || e.until < now) return null;
    return { verdict: pid && e.pids.has(pid) ? "expected" : "miss", upgradeId: e.upgradeId };
  }
}
