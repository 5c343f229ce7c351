/**
 * Kills an approved upgrade predicted. While an upgrade step runs on a node,
 * a child_terminated for a predicted pid is expected (recorded, no page);
 * any other kill in that window is a prediction miss (pages, and says so).
 * Held in memory by the instance that sends the step, and adopted from the
 * stored step (alerts/stored-expectations.ts) by whichever instance receives
 * the deaths: after a failover that is another one.
 */
/** How long after a step is sent its deaths count as the upgrade's. */
export const EXPECT_WINDOW_MS = 15 * 60_000;

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

  /**
   * An expectation read from the database: the same upgrade's pids join the
   * ones held; a later step (a later expiry) replaces an older one.
   */
  adopt(node: string, e: Expectation): void {
    const prev = this.byNode.get(node);
    if (prev?.upgradeId === e.upgradeId) this.byNode.set(node, { upgradeId: e.upgradeId, pids: new Set([...prev.pids, ...e.pids]), until: Math.max(prev.until, e.until) });
    else if (!prev || prev.until < e.until) this.byNode.set(node, e);
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
