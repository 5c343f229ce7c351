import { describe, expect, it } from "vitest";
import { ProcessTable } from "../../server/agents/process-table";
import { countValue, type ProcessRecord } from "../../server/agents/protocol";

function rec(i: number, over: Partial<ProcessRecord> = {}): ProcessRecord {
  return {
    pid: `<0.${i}.0>`,
    name: i % 10 === 0 ? `named_${i}` : null,
    initialCall: "proc_lib:init_p/5",
    currentFunction: i % 2 ? "gen_server:loop/7" : "prim_inet:accept0/3",
    mailbox: i % 7,
    memory: 1000 + i,
    reductions: i * 3,
    status: "waiting",
    links: [],
    parent: null,
    ancestors: [],
    application: null,
    ...over,
  };
}

function frame(over: object) {
  return { type: "procs" as const, seq: 1, at: 0, reset: false, total: 0, upsert: [], mailbox: [], remove: [], ...over };
}

describe("ProcessTable", () => {
  it("applies reset, upserts, mailbox patches and removals", () => {
    const t = new ProcessTable();
    t.apply(frame({ reset: true, upsert: [rec(1), rec(2), rec(3)], total: 3 }));
    t.apply(frame({ mailbox: [["<0.2.0>", 500]], remove: ["<0.3.0>"] }));
    expect(t.size).toBe(2);
    expect(t.get("<0.2.0>")?.mailbox).toBe(500);
    expect(t.get("<0.3.0>")).toBeUndefined();
    t.apply(frame({ reset: true, upsert: [rec(9)] }));
    expect(t.size).toBe(1);
  });

  it("ignores mailbox patches for unknown pids", () => {
    const t = new ProcessTable();
    t.apply(frame({ reset: true, upsert: [rec(1)] }));
    t.apply(frame({ mailbox: [["<0.99.0>", 5]] }));
    expect(t.size).toBe(1);
  });

  it("serves sorted, filtered windows", async () => {
    const t = new ProcessTable();
    t.apply(frame({ reset: true, upsert: Array.from({ length: 1000 }, (_, i) => rec(i + 1)) }));
    t.apply(frame({ mailbox: [["<0.500.0>", 10_000]] }));
    const w = await t.window({ sort: "mailbox", desc: true, offset: 0, limit: 5 });
    expect(w.total).toBe(1000);
    expect(w.rows[0].pid).toBe("<0.500.0>");
    expect(w.rows).toHaveLength(5);
    const asc = await t.window({ sort: "memory", desc: false, offset: 10, limit: 2 });
    expect(asc.rows.map((r) => r.memory)).toEqual([1011, 1012]);
    const f = await t.window({ sort: "pid", desc: false, filter: "NAMED_1", offset: 0, limit: 1000 });
    expect(f.matched).toBe(f.rows.length);
    expect(f.rows.every((r) => r.name?.startsWith("named_1"))).toBe(true);
    expect(f.matched).toBe(12); // named_10, named_100..named_190 (10), named_1000
    const last = await t.window({ sort: "mailbox", desc: true, offset: 998, limit: 10 });
    expect(last.rows).toHaveLength(2);
  });

  it("orders pids numerically, not as text", async () => {
    const t = new ProcessTable();
    t.apply(frame({ reset: true, upsert: [rec(10), rec(9), rec(100)] }));
    expect((await t.window({ sort: "pid", desc: false, offset: 0, limit: 3 })).rows.map((r) => r.pid)).toEqual(["<0.9.0>", "<0.10.0>", "<0.100.0>"]);
  });

  it("top-N matches a full sort", () => {
    const t = new ProcessTable();
    const rows = Array.from({ length: 5000 }, (_, i) => rec(i + 1, { memory: (i * 7919) % 10007 }));
    t.apply(frame({ reset: true, upsert: rows }));
    const expected = [...rows]
      .sort((a, b) => b.memory - a.memory)
      .slice(0, 10)
      .map((r) => r.memory);
    expect(t.top("memory", 10).map((r) => r.memory)).toEqual(expected);
  });
});

const LOOP_GAP_MS = 250;

describe("ProcessTable filtered windows on a big table (issue 10, item 7)", () => {
  const N = 400_000;
  const big = new ProcessTable();
  big.apply(frame({ reset: true, upsert: Array.from({ length: N }, (_, i) => rec(i + 1, { name: i % 50_000 === 7 ? `needle_${i}` : null })) }));

  /**
   * The longest the event loop went without running a 1 ms timer while
   * `work` ran, and how long `work` took. The code before the fix held the
   * loop for the whole work (seconds on this table). On a loaded 2-core
   * machine the OS alone can stall an idle process for a few hundred ms, so
   * the bound is relative: a stall longer than LOOP_GAP_MS must still be less
   * than a third of the whole work — work done in one piece never passes that.
   */
  async function maxLoopGap(work: () => Promise<unknown>): Promise<{ gap: number; bound: number }> {
    const started = performance.now();
    let last = started;
    let worst = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
    }, 1);
    try {
      await work();
    } finally {
      clearInterval(timer);
    }
    const ended = performance.now();
    return { gap: Math.max(worst, ended - last), bound: Math.max(LOOP_GAP_MS, (ended - started) / 3) };
  }

  it("sorts a changed table without holding the event loop, and sorts it right", async () => {
    big.apply(frame({ mailbox: [["<0.77.0>", 9]] })); // a new version: the next window sorts again
    let w: Awaited<ReturnType<ProcessTable["window"]>> | null = null;
    const { gap, bound } = await maxLoopGap(async () => {
      w = await big.window({ sort: "pid", desc: false, offset: 0, limit: 3 });
    });
    expect(gap).toBeLessThan(bound);
    expect(w!.rows.map((r) => r.pid)).toEqual(["<0.1.0>", "<0.2.0>", "<0.3.0>"]);
    // Against a plain sort, for every key, across many runs of the merge.
    const t = new ProcessTable();
    const rows = Array.from({ length: 40_000 }, (_, i) =>
      rec(i + 1, { memory: (i * 7919) % 10007, mailbox: (i * 31) % 97, reductions: (i * 104729) % 65521, name: i % 3 ? `n${(i * 13) % 5000}` : null }),
    );
    t.apply(frame({ reset: true, upsert: rows }));
    const pidNo = (p: string) => Number(p.split(".")[1]);
    for (const key of ["memory", "mailbox", "reductions", "pid", "name"] as const) {
      const cmp = (a: (typeof rows)[number], b: (typeof rows)[number]) =>
        (key === "pid" ? 0 : key === "name" ? (a.name ?? "\uffff").localeCompare(b.name ?? "\uffff") : countValue(a[key]) - countValue(b[key])) || pidNo(a.pid) - pidNo(b.pid);
      const expected = [...rows].sort(cmp).map((r) => r.pid);
      const got = (await t.window({ sort: key, desc: false, offset: 0, limit: 1000 })).rows.map((r) => r.pid);
      expect(got, key).toEqual(expected.slice(0, 1000));
      const tail = (await t.window({ sort: key, desc: true, offset: 0, limit: 1000 })).rows.map((r) => r.pid);
      expect(tail, key).toEqual(expected.slice(-1000).reverse());
    }
  });

  it("keeps the event loop free while a batch of filtered windows scans", async () => {
    await big.window({ sort: "pid", desc: false, offset: 0, limit: 1 }); // the sort, cached per version
    const started = performance.now();
    let answers: Awaited<ReturnType<ProcessTable["window"]>>[] = [];
    const { gap, bound } = await maxLoopGap(async () => {
      // Sixteen different filters that match nothing: each would scan the whole table.
      answers = await Promise.all(Array.from({ length: 16 }, (_, i) => big.window({ sort: "pid", desc: false, filter: `no-such-${i}`, offset: 0, limit: 100 })));
    });
    expect(gap).toBeLessThan(bound);
    for (const a of answers) {
      expect(a.rows).toEqual([]);
      expect(a.scanned).toBeGreaterThan(0);
      if (a.partial) expect(a.scanned).toBeLessThan(N);
      else expect(a.scanned).toBe(N);
    }
    // All of them together stay within a few budgets, not 16 full scans back to back.
    expect(performance.now() - started).toBeLessThan(16 * 250);
  });

  it("goes on from where the last request stopped and ends with the exact answer", async () => {
    let w = await big.window({ sort: "pid", desc: false, filter: "needle_", offset: 0, limit: 100 });
    const seen = [w.scanned];
    for (let i = 0; w.partial && i < 200; i += 1) {
      w = await big.window({ sort: "pid", desc: false, filter: "needle_", offset: 0, limit: 100 });
      seen.push(w.scanned);
    }
    expect(w.partial).toBe(false);
    expect(w.scanned).toBe(N);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(w.matched).toBe(8); // i = 7, 50_007, …, 350_007
    expect(w.rows.map((r) => r.name)).toEqual(Array.from({ length: 8 }, (_, k) => `needle_${k * 50_000 + 7}`));
  });

  it("pages through the matches in either direction", async () => {
    const until = async (q: Parameters<ProcessTable["window"]>[0]) => {
      let w = await big.window(q);
      for (let i = 0; w.partial && i < 200; i += 1) w = await big.window(q);
      return w;
    };
    const first = await until({ sort: "pid", desc: false, filter: "gen_server", offset: 0, limit: 10 });
    expect(first.rows.map((r) => r.pid)).toEqual(Array.from({ length: 10 }, (_, k) => `<0.${2 * k + 1}.0>`));
    expect(first.matched).toBe(N / 2);
    const last = await until({ sort: "pid", desc: true, filter: "gen_server", offset: 1, limit: 3 });
    expect(last.rows.map((r) => r.pid)).toEqual([`<0.${N - 3}.0>`, `<0.${N - 5}.0>`, `<0.${N - 7}.0>`]);
  });
});
