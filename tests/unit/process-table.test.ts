import { describe, expect, it } from "vitest";
import { ProcessTable } from "../../server/agents/process-table";
import type { ProcessRecord } from "../../server/agents/protocol";

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

  it("serves sorted, filtered windows", () => {
    const t = new ProcessTable();
    t.apply(frame({ reset: true, upsert: Array.from({ length: 1000 }, (_, i) => rec(i + 1)) }));
    t.apply(frame({ mailbox: [["<0.500.0>", 10_000]] }));
    const w = t.window({ sort: "mailbox", desc: true, offset: 0, limit: 5 });
    expect(w.total).toBe(1000);
    expect(w.rows[0].pid).toBe("<0.500.0>");
    expect(w.rows).toHaveLength(5);
    const asc = t.window({ sort: "memory", desc: false, offset: 10, limit: 2 });
    expect(asc.rows.map((r) => r.memory)).toEqual([1011, 1012]);
    const f = t.window({ sort: "pid", desc: false, filter: "NAMED_1", offset: 0, limit: 1000 });
    expect(f.matched).toBe(f.rows.length);
    expect(f.rows.every((r) => r.name?.startsWith("named_1"))).toBe(true);
    expect(f.matched).toBe(12); // named_10, named_100..named_190 (10), named_1000
    const last = t.window({ sort: "mailbox", desc: true, offset: 998, limit: 10 });
    expect(last.rows).toHaveLength(2);
  });

  it("orders pids numerically, not as text", () => {
    const t = new ProcessTable();
    t.apply(frame({ reset: true, upsert: [rec(10), rec(9), rec(100)] }));
    expect(t.window({ sort: "pid", desc: false, offset: 0, limit: 3 }).rows.map((r) => r.pid)).toEqual(["<0.9.0>", "<0.10.0>", "<0.100.0>"]);
  });

  it("top-N matches a full sort", () => {
    const t = new ProcessTable();
    const rows = Array.from({ length: 5000 }, (_, i) => rec(i + 1, { memory: (i * 7919) % 10007 }));
    t.apply(frame({ reset: true, upsert: rows }));
    const expected = [...rows].sort((a, b) => b.memory - a.memory).slice(0, 10).map((r) => r.memory);
    expect(t.top("memory", 10).map((r) => r.memory)).toEqual(expected);
  });
});
