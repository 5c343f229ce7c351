/**
 * A synthetic agent: speaks docs/protocol.md over `ws` with made-up
 * processes. It is a load source for the browser (UI development and the
 * 100k-row smoothness check), not evidence of BEAM behaviour: anything that
 * claims how a real node behaves is tested against a real node.
 *
 * What it does: upgrade with `Authorization: Bearer` and `X-Beamdeck-Node`,
 * `hello`, wait for `welcome`, a `procs` reset in chunks of ≤ 1000 records,
 * a `tree`, then every `intervalMs` a delta of mailbox changes (and the
 * current top records); it answers `process_detail` and `refresh`.
 *
 * Over 400 lines because it speaks the whole protocol (hello, procs in
 * chunks, tree, deltas, requests, reconnects): it is one peer, as an agent is.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import WebSocket from "ws";

/** How long the server may take to welcome a synthetic agent (a loaded machine is slow, a hung server never answers). */
const WELCOME_TIMEOUT_MS = 30_000;

export interface SyntheticAgentOptions {
  /** The agent endpoint, ws://HOST:PORT/agent (an http(s):// base gets /agent appended). */
  url: string;
  token: string;
  node: string;
  /** How many processes the node pretends to have. */
  processCount: number;
  /** Delta period; 0 sends no deltas. Default 1000. */
  intervalMs?: number;
  /** Mailbox changes per delta (random small mailboxes). Default 200. */
  churn?: number;
  /** Seed for the pseudo-random generator (same seed, same node). Default 1. */
  seed?: number;
  /** Answer process_detail after this many ms (to see loading states). Default 0. */
  detailDelayMs?: number;
}

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

interface TreeNodeOut {
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

const CHUNK = 1000;
/** Mailbox sizes used by the well-known processes (tests assert these). */
export const HOT_MAILBOX = 48_213;
export const WARM_MAILBOX = 7_340;

/** mulberry32: small, fast, deterministic. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORKER_KINDS = [
  { initialCall: "Elixir.Synth.Session:init/1", currentFunction: "gen_server:loop/7", app: "synth" },
  { initialCall: "Elixir.Synth.Cache.Shard:init/1", currentFunction: "gen_server:loop/7", app: "synth" },
  { initialCall: "Elixir.Task.Supervised:invoke_mfa/2", currentFunction: "Elixir.Synth.Conn:loop/1", app: "synth" },
  { initialCall: "erlang:apply/2", currentFunction: "timer:sleep/1", app: null },
  { initialCall: "Elixir.Phoenix.Channel.Server:init/1", currentFunction: "gen_server:loop/7", app: "synth" },
  { initialCall: "proc_lib:init_p/5", currentFunction: "prim_inet:recv0/3", app: "synth" },
];

export class SyntheticAgent {
  readonly node: string;
  readonly bootId = randomUUID().replace(/-/g, "");
  private readonly opts: Required<SyntheticAgentOptions>;
  private readonly random: () => number;
  private readonly records = new Map<string, SyntheticRecord>();
  private readonly order: string[] = [];
  private ws: WebSocket | null = null;
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private dirty = new Map<string, number>();
  private tree: { name: string; vsn: string; master: string; root: TreeNodeOut }[] = [];
  /** Frames sent, by type (for tests and debugging). */
  readonly sent: Record<string, number> = {};
  /** Requests answered, by method. */
  readonly answered: Record<string, number> = {};
  /** The reason of the last close, if the server closed the socket. */
  lastClose: { code: number; reason: string } | null = null;

  constructor(options: SyntheticAgentOptions) {
    this.opts = { intervalMs: 1000, churn: 200, seed: 1, detailDelayMs: 0, ...options };
    this.node = options.node;
    this.random = rng(this.opts.seed);
    this.generate();
  }

  /** The well-known processes (stable across runs with the same options). */
  get hotPid(): string {
    return this.pidAt(5);
  }
  get warmPid(): string {
    return this.pidAt(6);
  }

  record(pid: string): SyntheticRecord | undefined {
    return this.records.get(pid);
  }

  /** All records, sorted by a numeric key, biggest first (ties by pid number). */
  topBy(key: "mailbox" | "memory" | "reductions", n: number): SyntheticRecord[] {
    return Array.from(this.records.values())
      .sort((a, b) => b[key] - a[key] || pidNum(b.pid) - pidNum(a.pid))
      .slice(0, n);
  }

  /** All records whose name, pid, initial call or current function contains `needle` (case-insensitive). */
  matching(needle: string): SyntheticRecord[] {
    const n = needle.toLowerCase();
    return Array.from(this.records.values()).filter((p) => `${p.pid} ${p.name ?? ""} ${p.initialCall ?? ""} ${p.currentFunction ?? ""}`.toLowerCase().includes(n));
  }

  get size(): number {
    return this.records.size;
  }

  /** Set one mailbox; it goes out with the next delta (or now, when `flush`). */
  setMailbox(pid: string, length: number, flush = true): void {
    const r = this.records.get(pid);
    if (!r) throw new Error(`no synthetic process ${pid}`);
    r.mailbox = length;
    this.dirty.set(pid, length);
    if (flush) this.sendDelta(false);
  }

  /** Connects and streams the table; resolves after the reset and the tree are sent. */
  async connect(): Promise<void> {
    const url = endpoint(this.opts.url);
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.token}`, "x-beamdeck-node": this.node }, maxPayload: 4 * 1024 * 1024, handshakeTimeout: 15_000 });
    this.ws = ws;
    ws.on("error", () => {}); // reported through 'close' / the open promise
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => reject(new Error(`agent upgrade refused: HTTP ${res.statusCode} ${body.trim()}`)));
      });
      ws.once("error", reject);
    });
    ws.on("close", (code, reason) => {
      this.lastClose = { code, reason: reason.toString() };
      this.stopTimer();
    });
    const welcome = new Promise<void>((resolve, reject) => {
      const onMessage = (data: WebSocket.RawData) => {
        const frame = JSON.parse(data.toString()) as { type: string };
        if (frame.type === "welcome") {
          ws.off("message", onMessage);
          resolve();
        }
      };
      ws.on("message", onMessage);
      ws.once("close", (code, reason) => reject(new Error(`closed before welcome: ${code} ${reason.toString()}`)));
      setTimeout(() => reject(new Error(`no welcome within ${WELCOME_TIMEOUT_MS / 1000} s from ${url}`)), WELCOME_TIMEOUT_MS).unref();
    });
    this.send({
      type: "hello",
      protocol: 1,
      node: this.node,
      bootId: this.bootId,
      agentVersion: "0.1.0-synthetic",
      otpRelease: "25",
      ertsVersion: "13.1.5",
      systemVersion: "Erlang/OTP 25 [erts-13.1.5] [source] [64-bit] [smp:8:8] [ds:8:8:10] [async-threads:1] [jit:ns] (synthetic)",
      distributed: true,
      startedAt: Date.now() - 3_725_000,
      processCount: this.records.size,
      processLimit: 1_048_576,
      schedulers: 8,
      applications: [
        { name: "synth", vsn: "2.4.1", description: "synthetic load" },
        { name: "kernel", vsn: "8.5.3", description: "ERTS  CXC 138 10" },
        { name: "stdlib", vsn: "4.2", description: "ERTS  CXC 138 10" },
      ],
      releases: [{ name: "synth", vsn: "2.4.1", status: "permanent", apps: ["kernel-8.5.3", "stdlib-4.2", "synth-2.4.1"] }],
      capabilities: ["procs", "tree", "detail"],
      config: { getState: false },
      lastEventSeq: 0,
    });
    await welcome;
    ws.on("message", (data) => this.onMessage(data.toString()));
    this.sendReset();
    this.sendTree();
    if (this.opts.intervalMs > 0) this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
  }

  /** Closes the socket (the server then marks the node disconnected). */
  async disconnect(): Promise<void> {
    this.stopTimer();
    const ws = this.ws;
    this.ws = null;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once("close", () => resolve());
      ws.close(1000, "synthetic agent stopping");
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000).unref();
    });
  }

  // ---- generation ----

  private pidAt(i: number): string {
    return this.order[i];
  }

  private generate(): void {
    const r = this.random;
    const n = this.opts.processCount;
    const add = (rec: Omit<SyntheticRecord, "pid">, i: number) => {
      const pid = `<0.${100 + i}.0>`;
      this.records.set(pid, { pid, ...rec });
      this.order.push(pid);
      return pid;
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
    named.forEach(([name, ic, cf], i) => {
      add(base({ name, initialCall: ic, currentFunction: cf }), i);
    });
    // The rest: anonymous workers of a few kinds, mostly empty mailboxes.
    for (let i = named.length; i < n; i += 1) {
      const k = WORKER_KINDS[Math.floor(r() * WORKER_KINDS.length)];
      const roll = r();
      const mailbox = roll < 0.97 ? 0 : roll < 0.995 ? Math.floor(r() * 20) : Math.floor(r() * 2000);
      add(base({ initialCall: k.initialCall, currentFunction: k.currentFunction, application: k.app, mailbox, status: r() < 0.01 ? "runnable" : "waiting" }), i);
    }
    const o = this.order;
    const set = (i: number, over: Partial<SyntheticRecord>) => Object.assign(this.records.get(o[i])!, over);
    set(5, { mailbox: HOT_MAILBOX, memory: 182_452_224, status: "runnable" });
    set(6, { mailbox: WARM_MAILBOX, memory: 24_117_248 });
    set(0, { links: [o[1], o[2], o[4], o[5], o[6]], ancestors: ["<0.99.0>"], parent: "<0.99.0>" });
    for (const i of [1, 2, 4, 5, 6]) set(i, { links: [o[0]], parent: o[0], ancestors: ["Elixir.Synth.Supervisor", "<0.99.0>"] });
    set(3, { links: [o[2], o[7], o[8], o[9]], parent: o[2], ancestors: ["Elixir.Synth.ConnSupervisor", "Elixir.Synth.Supervisor", "<0.99.0>"] });
    for (const i of [7, 8, 9]) set(i, { links: [o[3], "#Port<0.7>"], parent: o[3], ancestors: [o[3], "Elixir.Synth.ConnSupervisor", "Elixir.Synth.Supervisor"] });

    // Session workers under a pool: the first 300 anonymous processes.
    const sessions = o.slice(10, Math.min(o.length, 310));
    const leaf = (pid: string, id: string): TreeNodeOut => ({ pid, id, name: this.records.get(pid)!.name, kind: "worker", modules: ["Elixir.Synth.Session"], children: [], linked: [] });
    const linkedOf = (i: number) => ({ pid: o[i], name: null, initialCall: this.records.get(o[i])!.initialCall, linked: [] as never[] });
    this.tree = [
      {
        name: "synth",
        vsn: "2.4.1",
        master: "<0.98.0>",
        root: {
          pid: o[0],
          id: "Elixir.Synth.Supervisor",
          name: "Elixir.Synth.Supervisor",
          kind: "supervisor",
          modules: ["Elixir.Synth.Supervisor"],
          linked: [],
          children: [
            { ...leaf(o[1], "Elixir.Synth.Registry"), modules: ["Elixir.Registry"] },
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
            { ...leaf(o[5], "Elixir.Synth.EventLogger"), modules: ["Elixir.Synth.EventLogger"] },
            { ...leaf(o[6], "Elixir.Synth.Metrics"), modules: ["Elixir.Synth.Metrics"] },
            {
              pid: null,
              id: "Elixir.Synth.SessionSupervisor",
              name: null,
              kind: "supervisor",
              modules: "dynamic",
              linked: [],
              children: [],
            },
          ],
        },
      },
    ];
    // A running session supervisor holding the sessions (a big, auto-collapsed list).
    if (sessions.length > 0 && o.length > 310) {
      const supPid = o[o.length - 1];
      Object.assign(this.records.get(supPid)!, { name: "Elixir.Synth.SessionSupervisor", initialCall: "Elixir.DynamicSupervisor:init/1", currentFunction: "gen_server:loop/7" });
      this.tree[0].root.children[5] = {
        pid: supPid,
        id: "Elixir.Synth.SessionSupervisor",
        name: "Elixir.Synth.SessionSupervisor",
        kind: "supervisor",
        modules: "dynamic",
        linked: [],
        children: sessions.map((pid) => leaf(pid, "undefined")),
      };
    }
  }

  // ---- frames ----

  private send(frame: object): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const type = (frame as { type: string }).type;
    this.sent[type] = (this.sent[type] ?? 0) + 1;
    ws.send(JSON.stringify(frame));
  }

  private sendReset(): void {
    const all = this.order.map((pid) => this.records.get(pid)!);
    for (let i = 0; i < Math.max(1, all.length); i += CHUNK) {
      this.send({
        type: "procs",
        seq: this.seq++,
        at: Date.now(),
        reset: i === 0,
        total: all.length,
        upsert: all.slice(i, i + CHUNK),
        mailbox: [],
        remove: [],
        stats: { scanUs: 2400, sampleUs: 9000, intervalMs: this.opts.intervalMs || 1000, dropped: 0 },
      });
    }
    this.dirty.clear();
  }

  private sendTree(): void {
    this.send({ type: "tree", at: Date.now(), apps: this.tree });
  }

  private tick(): void {
    // Random small mailboxes come and go; the well-known ones stay put.
    const n = this.order.length;
    for (let k = 0; k < this.opts.churn && n > 10; k += 1) {
      const pid = this.order[10 + Math.floor(this.random() * (n - 10))];
      const r = this.records.get(pid)!;
      r.mailbox = this.random() < 0.6 ? 0 : Math.floor(this.random() * 40);
      r.reductions += Math.floor(this.random() * 5000);
      this.dirty.set(pid, r.mailbox);
    }
    this.sendDelta(true);
  }

  private sendDelta(withTop: boolean): void {
    const pairs = Array.from(this.dirty);
    this.dirty.clear();
    const upsert = withTop ? [...this.topBy("mailbox", 10), ...this.topBy("memory", 10)] : [];
    this.send({
      type: "procs",
      seq: this.seq++,
      at: Date.now(),
      reset: false,
      total: this.records.size,
      upsert,
      mailbox: pairs,
      remove: [],
      stats: { scanUs: 2000 + Math.floor(this.random() * 1500), sampleUs: 9000, intervalMs: this.opts.intervalMs || 1000, dropped: 0 },
    });
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private onMessage(text: string): void {
    let frame: { type: string; id?: string; method?: string; params?: { pid?: string } };
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type !== "request" || !frame.id) return;
    const id = frame.id;
    const method = frame.method ?? "";
    this.answered[method] = (this.answered[method] ?? 0) + 1;
    const reply = (body: object): void => {
      setTimeout(() => this.send({ type: "reply", id, ...body }), this.opts.detailDelayMs);
    };
    if (method === "process_detail") {
      const pid = frame.params?.pid ?? "";
      const r = this.records.get(pid);
      if (!r) {
        reply({ ok: false, error: { code: "not_found", message: `no such process ${pid}` } });
        return;
      }
      reply({ ok: true, result: this.detail(r) });
      return;
    }
    if (method === "refresh") {
      reply({ ok: true, result: {} });
      this.sendReset();
      this.sendTree();
      return;
    }
    reply({ ok: false, error: { code: "unknown_method", message: `unknown method ${method}` } });
  }

  private detail(r: SyntheticRecord) {
    const [mod] = (r.currentFunction ?? "erlang:apply/2").split(":");
    const stacktrace = [
      { mfa: r.currentFunction ?? "erlang:apply/2", file: mod.startsWith("Elixir.") ? `lib/${mod.slice(7).toLowerCase().replace(/\./g, "/")}.ex` : `${mod}.erl`, line: 42 },
      { mfa: r.initialCall ?? "proc_lib:init_p/5", file: "proc_lib.erl", line: 240 },
    ];
    const monitors = r.parent ? [{ kind: "process", pid: r.parent }] : [];
    return {
      pid: r.pid,
      alive: true,
      record: r,
      stacktrace,
      stackModules: Array.from(new Set(stacktrace.map((f) => f.mfa.split(":")[0]))),
      links: r.links,
      monitors,
      monitoredBy: [],
      trapExit: r.name?.endsWith("Supervisor") ?? false,
      priority: "normal",
      heapSize: Math.floor(r.memory / 16),
      stackSize: 12,
      totalHeapSize: Math.floor(r.memory / 8),
      messageQueueLen: r.mailbox,
      garbageCollection: { minorGcs: 17, fullsweepAfter: 65535 },
      dictionary: [
        { key: "'$ancestors'", value: `[${r.ancestors.join(",")}]` },
        { key: "'$initial_call'", value: `{${(r.initialCall ?? "erlang:apply/2").replace(":", ",").replace("/", ",")}}` },
      ],
      dictionaryTruncated: false,
      state: { error: "disabled" },
    };
  }
}

function pidNum(pid: string): number {
  const m = /^<\d+\.(\d+)\.\d+>$/.exec(pid);
  return m ? Number(m[1]) : 0;
}

function endpoint(url: string): string {
  const u = new URL(url);
  if (u.protocol === "http:" || u.protocol === "https:") {
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.pathname = "/agent";
  }
  return u.toString();
}

/** Creates and connects a synthetic agent. */
export async function startSyntheticAgent(options: SyntheticAgentOptions): Promise<SyntheticAgent> {
  const agent = new SyntheticAgent(options);
  await agent.connect();
  return agent;
}

// `tsx tests/support/synthetic-agent.ts URL TOKEN NODE COUNT`: a load source for UI work.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [url, token, node = "synth@localhost", count = "100000"] = process.argv.slice(2);
  if (!url || !token) {
    console.error("usage: tsx tests/support/synthetic-agent.ts ws://HOST:PORT/agent AGENT_TOKEN [NODE] [COUNT]");
    process.exit(2);
  }
  const agent = await startSyntheticAgent({ url, token, node, processCount: Number(count) });
  console.log(`synthetic agent ${node}: ${agent.size} processes; hot ${agent.hotPid}, warm ${agent.warmPid}`);
  const stop = () => void agent.disconnect().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
