/**
 * The made-up process table of a synthetic node: records, a supervision
 * tree and the well-known processes tests assert on. Generated once per
 * (process count, seed) and shared read-only by every simulated node of that
 * shape, so 200 nodes × 10k processes cost one table, not 200; each node
 * keeps only its own mailboxes and reductions (see agent.ts).
 *
 * @module
 */

export interface SyntheticRecord {
  pid: string;
  name: string | null;
  initialCall: string | null;
  currentFunction: string | null;
  mailbox: number;
  memory: number;
  reductions: number;
  status: string;
  links: string[];
  parent: string | null;
  ancestors: string[];
  application: string | null;
}

export interface TreeNodeOut {
  pid: string | null;
  id: string;
  name: string | null;
  kind: "supervisor" | "worker";
  modules: string[] | "dynamic";
  children: TreeNodeOut[];
  linked: { pid: string; name: string | null; initialCall: string | null; linked: never[] }[];
  timeout?: boolean;
  truncated?: boolean;
}

export interface TreeApp {
  name: string;
  vsn: string;
  master: string;
  root: TreeNodeOut;
}

/** Mailbox sizes used by the well-known processes (tests assert these). */
export const HOT_MAILBOX = 48_213;
export const WARM_MAILBOX = 7_340;
/** Index of the well-known processes in the table. */
export const HOT_INDEX = 5;
export const WARM_INDEX = 6;
/** Processes 0..9 are the well-known tree; churn only touches the rest. */
export const FIRST_ANONYMOUS = 10;

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Process i has pid <0.(100+i).0>, so a pid maps back to its index without a map. */
export function pidOf(i: number): string {
  return `<0.${100 + i}.0>`;
}

export function pidNum(pid: string): number {
  const m = /^<\d+\.(\d+)\.\d+>$/.exec(pid);
  return m ? Number(m[1]) : 0;
}

export function indexOf(pid: string, size: number): number {
  const i = pidNum(pid) - 100;
  return pid === pidOf(i) && i >= 0 && i < size ? i : -1;
}

const WORKER_KINDS = [
  { initialCall: "Elixir.Synth.Session:init/1", currentFunction: "gen_server:loop/7", app: "synth" },
  { initialCall: "Elixir.Synth.Cache.Shard:init/1", currentFunction: "gen_server:loop/7", app: "synth" },
  { initialCall: "Elixir.Task.Supervised:invoke_mfa/2", currentFunction: "Elixir.Synth.Conn:loop/1", app: "synth" },
  { initialCall: "erlang:apply/2", currentFunction: "timer:sleep/1", app: null },
  { initialCall: "Elixir.Phoenix.Channel.Server:init/1", currentFunction: "gen_server:loop/7", app: "synth" },
  { initialCall: "proc_lib:init_p/5", currentFunction: "prim_inet:recv0/3", app: "synth" },
];

export interface ProcessTemplate {
  /** Initial records, index i = pid <0.(100+i).0>; never mutated after generation. */
  readonly records: readonly SyntheticRecord[];
  readonly tree: readonly TreeApp[];
  /** Indexes of the 10 biggest memories (memory never changes, so this is computed once). */
  readonly topMemory: readonly number[];
}

const templates = new Map<string, ProcessTemplate>();

/** The table for (count, seed), generated on first use and then shared. */
export function processTemplate(count: number, seed: number): ProcessTemplate {
  const key = `${count}/${seed}`;
  let t = templates.get(key);
  if (!t) {
    t = generate(count, seed);
    templates.set(key, t);
  }
  return t;
}

function generate(n: number, seed: number): ProcessTemplate {
  const r = rng(seed);
  const records: SyntheticRecord[] = [];
  const add = (rec: Omit<SyntheticRecord, "pid">) => {
    records.push({ pid: pidOf(records.length), ...rec });
  };
  const base = (over: Partial<SyntheticRecord>): Omit<SyntheticRecord, "pid"> => ({
    name: null,
    initialCall: "proc_lib:init_p/5",
    currentFunction: "gen_server:loop/7",
    mailbox: 0,
    memory: 2848 + Math.floor(r() * 30_000),
    reductions: Math.floor(r() * 5_000_000),
    status: "waiting",
    links: [],
    parent: null,
    ancestors: [],
    application: "synth",
    ...over,
  });
  // 0..9: a small supervision tree with well-known members.
  const named: [string | null, string, string][] = [
    ["Elixir.Synth.Supervisor", "Elixir.Supervisor:init/1", "gen_server:loop/7"], // 0 root
    ["Elixir.Synth.Registry", "Elixir.Registry:init/1", "gen_server:loop/7"], // 1
    ["Elixir.Synth.ConnSupervisor", "Elixir.Supervisor:init/1", "gen_server:loop/7"], // 2
    ["Elixir.Synth.Acceptor", "Elixir.Task.Supervised:invoke_mfa/2", "prim_inet:accept0/3"], // 3
    ["Elixir.Synth.PoolSupervisor", "Elixir.Supervisor:init/1", "gen_server:loop/7"], // 4 (times out)
    ["Elixir.Synth.EventLogger", "Elixir.Synth.EventLogger:init/1", "Elixir.Synth.EventLogger:flush/2"], // 5 hot
    ["Elixir.Synth.Metrics", "Elixir.Synth.Metrics:init/1", "gen_server:loop/7"], // 6 warm
    [null, "Elixir.Task.Supervised:invoke_mfa/2", "Elixir.Synth.Conn:loop/1"], // 7 linked handler
    [null, "Elixir.Task.Supervised:invoke_mfa/2", "Elixir.Synth.Conn:loop/1"], // 8 linked handler
    [null, "Elixir.Task.Supervised:invoke_mfa/2", "Elixir.Synth.Conn:loop/1"], // 9 linked handler
  ];
  for (const [name, ic, cf] of named) add(base({ name, initialCall: ic, currentFunction: cf }));
  // The rest: anonymous workers of a few kinds, mostly empty mailboxes.
  for (let i = named.length; i < n; i += 1) {
    const k = WORKER_KINDS[Math.floor(r() * WORKER_KINDS.length)];
    const roll = r();
    const mailbox = roll < 0.97 ? 0 : roll < 0.995 ? Math.floor(r() * 20) : Math.floor(r() * 2000);
    add(base({ initialCall: k.initialCall, currentFunction: k.currentFunction, application: k.app, mailbox, status: r() < 0.01 ? "runnable" : "waiting" }));
  }
  const o = records.map((x) => x.pid);
  const set = (i: number, over: Partial<SyntheticRecord>) => Object.assign(records[i], over);
  set(HOT_INDEX, { mailbox: HOT_MAILBOX, memory: 182_452_224, status: "runnable" });
  set(WARM_INDEX, { mailbox: WARM_MAILBOX, memory: 24_117_248 });
  set(0, { links: [o[1], o[2], o[4], o[5], o[6]], ancestors: ["<0.99.0>"], parent: "<0.99.0>" });
  for (const i of [1, 2, 4, 5, 6]) set(i, { links: [o[0]], parent: o[0], ancestors: ["Elixir.Synth.Supervisor", "<0.99.0>"] });
  set(3, { links: [o[2], o[7], o[8], o[9]], parent: o[2], ancestors: ["Elixir.Synth.ConnSupervisor", "Elixir.Synth.Supervisor", "<0.99.0>"] });
  for (const i of [7, 8, 9]) set(i, { links: [o[3], "#Port<0.7>"], parent: o[3], ancestors: [o[3], "Elixir.Synth.ConnSupervisor", "Elixir.Synth.Supervisor"] });
  return { records, tree: buildTree(records), topMemory: topIndexes(records.length, 10, (i) => records[i].memory) };
}

function buildTree(records: SyntheticRecord[]): TreeApp[] {
  const o = records.map((x) => x.pid);
  const sessions = o.slice(10, Math.min(o.length, 310));
  const leaf = (pid: string, id: string, modules: string[]): TreeNodeOut => ({ pid, id, name: records[indexOf(pid, records.length)].name, kind: "worker", modules, children: [], linked: [] });
  const linkedOf = (i: number) => ({ pid: o[i], name: null, initialCall: records[i].initialCall, linked: [] as never[] });
  const children: TreeNodeOut[] = [
    leaf(o[1], "Elixir.Synth.Registry", ["Elixir.Registry"]),
    {
      pid: o[2],
      id: "Elixir.Synth.ConnSupervisor",
      name: "Elixir.Synth.ConnSupervisor",
      kind: "supervisor",
      modules: ["Elixir.Supervisor"],
      linked: [],
      children: [{ pid: o[3], id: "Elixir.Task", name: "Elixir.Synth.Acceptor", kind: "worker", modules: ["Elixir.Task"], children: [], linked: [7, 8, 9].map(linkedOf) }],
    },
    { pid: o[4], id: "Elixir.Synth.PoolSupervisor", name: "Elixir.Synth.PoolSupervisor", kind: "supervisor", modules: ["Elixir.Supervisor"], children: [], linked: [], timeout: true },
    leaf(o[5], "Elixir.Synth.EventLogger", ["Elixir.Synth.EventLogger"]),
    leaf(o[6], "Elixir.Synth.Metrics", ["Elixir.Synth.Metrics"]),
    { pid: null, id: "Elixir.Synth.SessionSupervisor", name: null, kind: "supervisor", modules: "dynamic", linked: [], children: [] },
  ];
  // A running session supervisor holding the sessions (a big, auto-collapsed list).
  if (sessions.length > 0 && o.length > 310) {
    const sup = records[o.length - 1];
    Object.assign(sup, { name: "Elixir.Synth.SessionSupervisor", initialCall: "Elixir.DynamicSupervisor:init/1", currentFunction: "gen_server:loop/7" });
    children[5] = {
      pid: sup.pid,
      id: "Elixir.Synth.SessionSupervisor",
      name: "Elixir.Synth.SessionSupervisor",
      kind: "supervisor",
      modules: "dynamic",
      linked: [],
      children: sessions.map((pid) => leaf(pid, "undefined", ["Elixir.Synth.Session"])),
    };
  }
  const root: TreeNodeOut = { pid: o[0], id: "Elixir.Synth.Supervisor", name: "Elixir.Synth.Supervisor", kind: "supervisor", modules: ["Elixir.Synth.Supervisor"], linked: [], children };
  return [{ name: "synth", vsn: "2.4.1", master: "<0.98.0>", root }];
}

/**
 * The `k` indexes with the biggest `value`, biggest first (ties: higher index
 * first, as the pid number orders them). One pass with a small sorted list:
 * O(n·k) instead of sorting the table at every tick of every node.
 */
export function topIndexes(n: number, k: number, value: (i: number) => number): number[] {
  const top: number[] = [];
  const before = (a: number, b: number) => value(a) > value(b) || (value(a) === value(b) && a > b);
  for (let i = 0; i < n; i += 1) {
    if (top.length === k && !before(i, top[k - 1])) continue;
    let j = Math.min(top.length, k - 1);
    top[j] = i;
    while (j > 0 && before(top[j], top[j - 1])) {
      [top[j], top[j - 1]] = [top[j - 1], top[j]];
      j -= 1;
    }
  }
  return top;
}
