/**
 * The server's process-table reads at 100k processes: a window of 100 rows
 * sorted by mailbox (cached sort per table version), against the baseline of
 * sorting the whole table for every request (what a change costs once).
 */
import { ProcessTable } from "../../server/agents/process-table";
import type { ProcessRecord } from "../../server/agents/protocol";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(fn: () => void, reps: number): number {
  const out: number[] = [];
  for (let i = 0; i < reps; i += 1) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  return median(out);
}

export function tableBench(n = 100_000): Record<string, number> {
  // A window right after a change pays one full sort: that is the baseline.
  const t = new ProcessTable();
  const rows: ProcessRecord[] = Array.from({ length: n }, (_, i) => ({
    pid: `<0.${i + 100}.0>`,
    name: i % 50 === 0 ? `worker_${i}` : null,
    initialCall: "proc_lib:init_p/5",
    currentFunction: "gen_server:loop/7",
    mailbox: (i * 7919) % 97 === 0 ? i % 1000 : 0,
    memory: 2000 + (i % 5000),
    reductions: i * 3,
    status: "waiting",
    links: [],
    parent: null,
    ancestors: [],
    application: null,
  }));
  for (let i = 0; i < n; i += 1000) t.apply({ type: "procs", seq: i, at: 0, reset: i === 0, total: n, upsert: rows.slice(i, i + 1000), mailbox: [], remove: [] });
  const firstSortMs = time(() => {
    t.apply({ type: "procs", seq: 1, at: 0, reset: false, total: n, upsert: [], mailbox: [["<0.100.0>", 5]], remove: [] });
    t.window({ sort: "mailbox", desc: true, offset: 0, limit: 100 });
  }, 5);
  const cachedMs = time(() => t.window({ sort: "mailbox", desc: true, offset: 50_000, limit: 100 }), 50);
  const filterMs = time(() => t.window({ sort: "mailbox", desc: true, filter: "worker_9", offset: 0, limit: 100 }), 10);
  const topMs = time(() => t.top("mailbox", 10), 20);
  return {
    processes: n,
    "baseline: sort per request (ms)": +firstSortMs.toFixed(2),
    "window, sort cached (ms)": +cachedMs.toFixed(3),
    "x cheaper than baseline": +(firstSortMs / cachedMs).toFixed(0),
    "filtered window (ms)": +filterMs.toFixed(2),
    "top 10 without sorting (ms)": +topMs.toFixed(2),
  };
}
