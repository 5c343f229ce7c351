/**
 * One node's live process table, patched by `procs` deltas, with windowed,
 * sorted, filtered reads so a browser never receives 100k rows at once.
 */
import type { ProcessRecord, ProcsFrame } from "./protocol";

export const SORT_KEYS = ["mailbox", "memory", "reductions", "pid", "name"] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface WindowQuery {
  sort: SortKey;
  desc: boolean;
  filter?: string;
  offset: number;
  limit: number;
}

export interface ProcessWindow {
  total: number;
  matched: number;
  offset: number;
  rows: ProcessRecord[];
}

function pidKey(pid: string): [number, number, number] {
  const m = /^<(\d+)\.(\d+)\.(\d+)>$/.exec(pid);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
}

function comparePid(a: string, b: string): number {
  const x = pidKey(a);
  const y = pidKey(b);
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

const COMPARE: Record<SortKey, (a: ProcessRecord, b: ProcessRecord) => number> = {
  mailbox: (a, b) => a.mailbox - b.mailbox || comparePid(a.pid, b.pid),
  memory: (a, b) => a.memory - b.memory || comparePid(a.pid, b.pid),
  reductions: (a, b) => a.reductions - b.reductions || comparePid(a.pid, b.pid),
  pid: (a, b) => comparePid(a.pid, b.pid),
  name: (a, b) => (a.name ?? "\uffff").localeCompare(b.name ?? "\uffff") || comparePid(a.pid, b.pid),
};

/** Text a filter is matched against: name, pid, initial call, current function. */
function haystack(p: ProcessRecord): string {
  return `${p.pid} ${p.name ?? ""} ${p.initialCall ?? ""} ${p.currentFunction ?? ""}`.toLowerCase();
}

export class ProcessTable {
  private byPid = new Map<string, ProcessRecord>();
  private sorted = new Map<SortKey, { version: number; rows: ProcessRecord[] }>();
  version = 0;
  /** Count the agent reported (may exceed the table while a resync streams in). */
  reportedTotal = 0;

  get size(): number {
    return this.byPid.size;
  }

  get(pid: string): ProcessRecord | undefined {
    return this.byPid.get(pid);
  }

  values(): IterableIterator<ProcessRecord> {
    return this.byPid.values();
  }

  apply(frame: ProcsFrame): void {
    if (frame.reset) this.byPid.clear();
    for (const r of frame.upsert) this.byPid.set(r.pid, r);
    for (const [pid, len] of frame.mailbox) {
      const r = this.byPid.get(pid);
      if (r && r.mailbox !== len) this.byPid.set(pid, { ...r, mailbox: len });
    }
    for (const pid of frame.remove) this.byPid.delete(pid);
    this.reportedTotal = frame.total;
    this.version += 1;
  }

  clear(): void {
    this.byPid.clear();
    this.sorted.clear();
    this.version += 1;
  }

  /** Sorted ascending by key; cached per table version (one sort per change, not per request). */
  private sortedBy(key: SortKey): ProcessRecord[] {
    const cached = this.sorted.get(key);
    if (cached && cached.version === this.version) return cached.rows;
    const rows = Array.from(this.byPid.values()).sort(COMPARE[key]);
    this.sorted.set(key, { version: this.version, rows });
    return rows;
  }

  window(q: WindowQuery): ProcessWindow {
    const base = this.sortedBy(q.sort);
    const needle = q.filter?.trim().toLowerCase();
    const matchedRows = needle ? base.filter((p) => haystack(p).includes(needle)) : base;
    const n = matchedRows.length;
    const rows: ProcessRecord[] = [];
    for (let i = q.offset; i < Math.min(n, q.offset + q.limit); i += 1) {
      rows.push(q.desc ? matchedRows[n - 1 - i] : matchedRows[i]);
    }
    return { total: this.byPid.size, matched: n, offset: q.offset, rows };
  }

  /** Top N by a numeric key, without sorting the whole table. */
  top(key: "mailbox" | "memory" | "reductions", n: number): ProcessRecord[] {
    const best: ProcessRecord[] = [];
    for (const p of this.byPid.values()) {
      if (best.length < n) {
        best.push(p);
        if (best.length === n) best.sort((a, b) => b[key] - a[key]);
      } else if (p[key] > best[n - 1][key]) {
        best[n - 1] = p;
        // One insertion step keeps `best` sorted (n is small).
        for (let i = n - 1; i > 0 && best[i][key] > best[i - 1][key]; i -= 1) [best[i], best[i - 1]] = [best[i - 1], best[i]];
      }
    }
    return best.sort((a, b) => b[key] - a[key]);
  }
}
