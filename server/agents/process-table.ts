/**
 * One node's live process table, patched by `procs` deltas, with windowed,
 * sorted, filtered reads so a browser never receives 100k rows at once.
 */
import { countValue, type ProcessRecord, type ProcsFrame } from "./protocol";

export const SORT_KEYS = ["mailbox", "memory", "reductions", "pid", "name"] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface WindowQuery {
  sort: SortKey;
  desc: boolean;
  filter?: string;
  /** Pids that match the filter besides the text match (the agent's stack search); `key` names the set for the scan cache. */
  also?: { key: string; pids: ReadonlySet<string> };
  offset: number;
  limit: number;
}

export interface ProcessWindow {
  total: number;
  /** Rows matching the filter; with `partial`, those found so far (a lower bound). */
  matched: number;
  offset: number;
  rows: ProcessRecord[];
  /** The filter scan ran out of time before the end of the table. */
  partial: boolean;
  /** Rows the filter has looked at (the whole table when not partial). */
  scanned: number;
}

/**
 * A filtered window scans the table in slices and yields to the event loop
 * between them, so one request (or a batch of them) never holds the server
 * (healthz, agents' keepalives) for more than a slice. A scan that runs out
 * of budget answers with what it found (`partial`); it is kept per (table
 * version, sort, direction, filter) and the next request goes on from there.
 */
export const FILTER_SCAN = { sliceMs: 8, budgetMs: 250, rowsPerClockCheck: 512, keptScans: 16 } as const;

interface FilterScan {
  version: number;
  base: ProcessRecord[];
  /** Next index into `base`, counted in scan order (from the end when descending). */
  next: number;
  matches: ProcessRecord[];
}

function pidKey(pid: string): [number, number, number] {
  const m = /^<(\d+)\.(\d+)\.(\d+)>$/.exec(pid);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
}

/** What names a process for a person: its registered name, else its label (the module an anonymous fun runs), else its initial call. */
export function displayName(p: ProcessRecord): string | null {
  return p.name ?? p.label ?? p.initialCall;
}

/** Text a filter is matched against: name, pid, initial call, current function, label. */
function haystack(p: ProcessRecord): string {
  return `${p.pid} ${p.name ?? ""} ${p.initialCall ?? ""} ${p.currentFunction ?? ""} ${p.label ?? ""}`.toLowerCase();
}

/** A pid as one number that orders like the pid (`<A.B.C>`: C < 2^8, B < 2^28, as the VM allocates them). */
function pidNumber(pid: string): number {
  const [a, b, c] = pidKey(pid);
  return a * 2 ** 36 + b * 2 ** 8 + Math.min(c, 255);
}

const SORT_RUN = 8192;
const MERGE_SLICE = 32_768;

/**
 * Sort runs of SORT_RUN, then merge pairs of runs, yielding between slices.
 * Keys live in typed arrays and the sort moves indices, so a 2M-row table
 * allocates no object per row (allocation and GC were the long pauses).
 */
async function sortInSlices(records: ProcessRecord[], key: SortKey): Promise<ProcessRecord[]> {
  const n = records.length;
  const pids = new Float64Array(n);
  const nums = key === "name" || key === "pid" ? null : new Float64Array(n);
  const names = key === "name" ? records.map((r) => r.name ?? "\uffff") : null;
  for (let i = 0; i < n; i += 1) {
    pids[i] = pidNumber(records[i].pid);
    if (nums) nums[i] = countValue(records[i][key as "mailbox" | "memory" | "reductions"]);
    if (i % 32_768 === 32_767) await nextSliceTurn();
  }
  const cmp = names
    ? (x: number, y: number) => names[x].localeCompare(names[y]) || pids[x] - pids[y]
    : nums
      ? (x: number, y: number) => nums[x] - nums[y] || pids[x] - pids[y]
      : (x: number, y: number) => pids[x] - pids[y];
  let a = new Uint32Array(n);
  for (let i = 0; i < n; i += 1) a[i] = i;
  for (let lo = 0; lo < n; lo += SORT_RUN) {
    await nextSliceTurn();
    a.subarray(lo, Math.min(n, lo + SORT_RUN)).sort(cmp);
  }
  let b = new Uint32Array(n);
  for (let width = SORT_RUN; width < n; width *= 2) {
    let budget = 0;
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      for (let k = lo; k < hi; k += 1) {
        b[k] = i < mid && (j >= hi || cmp(a[i], a[j]) <= 0) ? a[i++] : a[j++];
        if (++budget === MERGE_SLICE) {
          budget = 0;
          await nextSliceTurn();
        }
      }
    }
    [a, b] = [b, a];
  }
  const out: ProcessRecord[] = new Array(n);
  for (let i = 0; i < n; i += 1) out[i] = records[a[i]];
  return out;
}

/**
 * Scans of every table take turns: one slice per turn of the event loop,
 * whatever the number of concurrent requests, so timers and sockets wait
 * at most one slice.
 */
const sliceQueue: (() => void)[] = [];
let pumping = false;
function nextSliceTurn(): Promise<void> {
  return new Promise((resolve) => {
    sliceQueue.push(resolve);
    if (!pumping) {
      pumping = true;
      setImmediate(pumpSlices);
    }
  });
}
function pumpSlices(): void {
  sliceQueue.shift()?.();
  if (sliceQueue.length) setImmediate(pumpSlices);
  else pumping = false;
}

export class ProcessTable {
  private byPid = new Map<string, ProcessRecord>();
  private sorted = new Map<SortKey, { version: number; rows: Promise<ProcessRecord[]> }>();
  private scans = new Map<string, FilterScan>();
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
    this.scans.clear();
    this.version += 1;
  }

  /**
   * Sorted ascending by key; cached per table version (one sort per change,
   * not per request), and shared by the requests that wait for it. Sorted in
   * runs and merged, a slice per event-loop turn, so a 2M-row table does not
   * hold the server for the seconds one `Array.sort` takes.
   */
  private sortedBy(key: SortKey): Promise<ProcessRecord[]> {
    const cached = this.sorted.get(key);
    if (cached && cached.version === this.version) return cached.rows;
    const rows = sortInSlices(Array.from(this.byPid.values()), key);
    this.sorted.set(key, { version: this.version, rows });
    rows.catch(() => this.sorted.delete(key));
    return rows;
  }

  async window(q: WindowQuery): Promise<ProcessWindow> {
    const base = await this.sortedBy(q.sort);
    const needle = q.filter?.trim().toLowerCase();
    const at = (i: number) => (q.desc ? base[base.length - 1 - i] : base[i]);
    if (!needle) {
      const rows: ProcessRecord[] = [];
      for (let i = q.offset; i < Math.min(base.length, q.offset + q.limit); i += 1) rows.push(at(i));
      return { total: this.byPid.size, matched: base.length, offset: q.offset, rows, partial: false, scanned: base.length };
    }
    const scan = this.scanFor(q.sort, q.desc, needle, base, q.also?.key ?? "");
    await this.advance(scan, needle, q.desc, q.also?.pids);
    const done = scan.next >= scan.base.length;
    return {
      total: this.byPid.size,
      matched: scan.matches.length,
      offset: q.offset,
      rows: scan.matches.slice(q.offset, q.offset + q.limit),
      partial: !done,
      scanned: scan.next,
    };
  }

  private scanFor(sort: SortKey, desc: boolean, needle: string, base: ProcessRecord[], alsoKey: string): FilterScan {
    const key = JSON.stringify([sort, desc, needle, alsoKey]);
    const kept = this.scans.get(key);
    if (kept && kept.version === this.version && kept.base === base) return kept;
    const scan: FilterScan = { version: this.version, base, next: 0, matches: [] };
    this.scans.delete(key);
    this.scans.set(key, scan);
    // Bounded: the oldest scans go first.
    for (const k of this.scans.keys()) {
      if (this.scans.size <= FILTER_SCAN.keptScans) break;
      this.scans.delete(k);
    }
    return scan;
  }

  /** Scan on until the table ends or the budget is spent, a slice per turn of the event loop. */
  private async advance(scan: FilterScan, needle: string, desc: boolean, also?: ReadonlySet<string>): Promise<void> {
    const { base } = scan;
    const deadline = performance.now() + FILTER_SCAN.budgetMs;
    while (scan.next < base.length && performance.now() < deadline) {
      await nextSliceTurn();
      const sliceEnd = performance.now() + FILTER_SCAN.sliceMs;
      // One synchronous slice: nothing else touches `scan` until the next await.
      while (scan.next < base.length) {
        const stop = Math.min(base.length, scan.next + FILTER_SCAN.rowsPerClockCheck);
        for (; scan.next < stop; scan.next += 1) {
          const p = desc ? base[base.length - 1 - scan.next] : base[scan.next];
          if (haystack(p).includes(needle) || also?.has(p.pid)) scan.matches.push(p);
        }
        if (performance.now() >= sliceEnd) break;
      }
    }
  }

  /** Top N by a numeric key, without sorting the whole table. */
  top(key: "mailbox" | "memory" | "reductions", n: number): ProcessRecord[] {
    const v = (p: ProcessRecord) => countValue(p[key]);
    const best: ProcessRecord[] = [];
    for (const p of this.byPid.values()) {
      if (best.length < n) {
        best.push(p);
        if (best.length === n) best.sort((a, b) => v(b) - v(a));
      } else if (v(p) > v(best[n - 1])) {
        best[n - 1] = p;
        // One insertion step keeps `best` sorted (n is small).
        for (let i = n - 1; i > 0 && v(best[i]) > v(best[i - 1]); i -= 1) [best[i], best[i - 1]] = [best[i - 1], best[i]];
      }
    }
    return best.sort((a, b) => v(b) - v(a));
  }
}
