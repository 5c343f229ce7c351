/**
 * A synthetic agent: speaks docs/protocol.md over `ws` with made-up
 * processes. It is a load source (UI development, the 100k-row smoothness
 * check, `tools/loadgen` and `npm run bench -- scale`), not evidence of BEAM
 * behaviour: anything that claims how a real node behaves is tested against
 * a real node.
 *
 * Over 400 lines because it speaks the whole protocol (hello, procs in
 * chunks, tree, deltas, events and their replay, requests, reconnects): it
 * is one peer, as an agent is.
 *
 * What it does: upgrade with `Authorization: Bearer` and `X-Beamdeck-Node`,
 * `hello`, wait for `welcome`, a `procs` reset in chunks of ≤ 1000 records,
 * a `tree`, then every `intervalMs` a delta of mailbox changes (and the
 * current top records); events with per-boot sequence numbers, kept until
 * acknowledged and replayed after `welcome.lastEventSeq`; it answers
 * `process_detail` and `refresh`. With `reconnect`, it behaves like the real
 * agent when the socket goes: the next endpoint, jittered backoff.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { backoffMs, endpoint } from "./endpoints";
import { FIRST_ANONYMOUS, HOT_INDEX, indexOf, type ProcessTemplate, processTemplate, rng, type SyntheticRecord, topIndexes, WARM_INDEX } from "./process-template";

export { HOT_MAILBOX, type SyntheticRecord, WARM_MAILBOX } from "./process-template";

/** How long the server may take to welcome a synthetic agent (a loaded machine is slow, a hung server never answers). */
const WELCOME_TIMEOUT_MS = 30_000;
const CHUNK = 1000;
/** Unacknowledged events kept for replay; older ones are dropped and declared (`droppedSeqs`), as the real agent does. */
const MAX_UNACKED = 10_000;
/** The fastest event timer (a faster rate sends several per tick). */
const MIN_EVENT_PERIOD_MS = 20;

export interface SyntheticAgentOptions {
  /** Agent endpoints, ws://HOST:PORT/agent (an http(s):// base gets /agent appended); several are tried in order, moving on after each failure. */
  url: string | string[];
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
  /** Supervisor-report events per second (0: none). Default 0. */
  eventsPerSecond?: number;
  /** Reconnect when the socket closes (the next endpoint, jittered backoff) until `disconnect`. Default false. */
  reconnect?: boolean;
  /** Which endpoint to try first (agents spread over instances as if configured differently). Default 0. */
  firstEndpoint?: number;
  /** `hello.group` (fleet tokens created with `--group`). */
  group?: string;
  /** The version of the release `synth` the node says it runs (nodes of a group on different versions drift). Default "2.4.1". */
  releaseVsn?: string;
}

interface EventOut {
  type: "event";
  seq: number;
  at: number;
  [k: string]: unknown;
}

export class SyntheticAgent {
  readonly node: string;
  readonly bootId = randomUUID().replace(/-/g, "");
  private readonly opts: Required<Omit<SyntheticAgentOptions, "group" | "url" | "releaseVsn">> & { group?: string; releaseVsn?: string };
  private readonly urls: string[];
  private urlIndex: number;
  private readonly random: () => number;
  private readonly template: ProcessTemplate;
  /** This node's own mutable columns; the rest of each record is the shared template. */
  private readonly mailbox: Int32Array;
  private readonly reductions: Float64Array;
  private ws: WebSocket | null = null;
  private welcomed = false;
  private stopping = false;
  private seq = 0;
  private timers: NodeJS.Timeout[] = [];
  private eventTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private dirty = new Map<number, number>();
  /** Last event seq produced in this boot. */
  private eventSeq = 0;
  private unacked: EventOut[] = [];
  private droppedPending: [number, number] | null = null;
  private eventsPaused = false;
  /** Frames sent, by type (for tests and debugging). */
  readonly sent: Record<string, number> = {};
  /** Requests answered, by method. */
  readonly answered: Record<string, number> = {};
  /** The reason of the last close, if the socket closed. */
  lastClose: { code: number; reason: string } | null = null;
  /** Highest event seq the server acknowledged (acks and welcome). */
  eventsAcked = 0;
  /** Events dropped from the full replay buffer. */
  eventsDropped = 0;
  /** Welcomes received (1 + reconnects). */
  welcomes = 0;
  /** The endpoint of the current (or last) socket, and when it was welcomed. */
  connectedUrl: string | null = null;
  welcomedAt = 0;

  constructor(options: SyntheticAgentOptions) {
    this.opts = { intervalMs: 1000, churn: 200, seed: 1, detailDelayMs: 0, eventsPerSecond: 0, reconnect: false, firstEndpoint: 0, ...options };
    this.node = options.node;
    this.urls = (Array.isArray(options.url) ? options.url : options.url.split(",")).map((u) => endpoint(u.trim()));
    if (this.urls.length === 0) throw new Error("a synthetic agent needs at least one endpoint");
    this.urlIndex = this.opts.firstEndpoint % this.urls.length;
    // The node's own random stream (churn), apart from the template's (shared by every node of the same seed).
    this.random = rng(nodeSeed(this.opts.seed, options.node));
    this.template = processTemplate(options.processCount, this.opts.seed);
    this.mailbox = Int32Array.from(this.template.records, (r) => r.mailbox);
    this.reductions = Float64Array.from(this.template.records, (r) => r.reductions);
  }

  /** The well-known processes (stable across runs with the same options). */
  get hotPid(): string {
    return this.template.records[HOT_INDEX].pid;
  }
  get warmPid(): string {
    return this.template.records[WARM_INDEX].pid;
  }

  get size(): number {
    return this.template.records.length;
  }

  /** Last event seq produced (sent or waiting to be). */
  get eventsProduced(): number {
    return this.eventSeq;
  }

  get connected(): boolean {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  record(pid: string): SyntheticRecord | undefined {
    const i = indexOf(pid, this.size);
    return i < 0 ? undefined : this.recordAt(i);
  }

  /** All records, sorted by a numeric key, biggest first (ties by pid number). */
  topBy(key: "mailbox" | "memory" | "reductions", n: number): SyntheticRecord[] {
    const value = key === "mailbox" ? (i: number) => this.mailbox[i] : key === "reductions" ? (i: number) => this.reductions[i] : (i: number) => this.template.records[i].memory;
    return topIndexes(this.size, n, value).map((i) => this.recordAt(i));
  }

  /** All records whose name, pid, initial call or current function contains `needle` (case-insensitive). */
  matching(needle: string): SyntheticRecord[] {
    const n = needle.toLowerCase();
    return this.template.records
      .filter((p) => `${p.pid} ${p.name ?? ""} ${p.initialCall ?? ""} ${p.currentFunction ?? ""}`.toLowerCase().includes(n))
      .map((p) => this.recordAt(indexOf(p.pid, this.size)));
  }

  /** Set one mailbox; it goes out with the next delta (or now, when `flush`). */
  setMailbox(pid: string, length: number, flush = true): void {
    const i = indexOf(pid, this.size);
    if (i < 0) throw new Error(`no synthetic process ${pid}`);
    this.mailbox[i] = length;
    this.dirty.set(i, length);
    if (flush) this.sendDelta(false);
  }

  /** Connects to the current endpoint and streams the table; resolves after the reset and the tree are sent. Rejects (and moves to the next endpoint) on failure. */
  async connect(): Promise<void> {
    this.stopping = false;
    try {
      await this.attempt();
    } catch (e) {
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      throw e;
    }
  }

  /** Starts connecting in the background and keeps reconnecting (requires `reconnect`) until `disconnect`. */
  start(): void {
    if (!this.opts.reconnect) throw new Error("start() needs the reconnect option");
    this.stopping = false;
    this.scheduleReconnect(0);
  }

  /** Closes the socket for good (the server then marks the node disconnected). */
  async disconnect(): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.stopTimers();
    if (this.eventTimer) clearInterval(this.eventTimer);
    this.eventTimer = null;
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

  // ---- connection ----

  private async attempt(): Promise<void> {
    const url = this.urls[this.urlIndex];
    this.welcomed = false;
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
    const opened = Date.now();
    let lived = false;
    ws.on("close", (code, reason) => {
      this.lastClose = { code, reason: reason.toString() };
      // Before the welcome, the failed attempt itself moves on (scheduleReconnect's catch).
      if (this.ws !== ws || !lived) return;
      this.welcomed = false;
      this.stopTimers();
      if (!this.opts.reconnect || this.stopping) return;
      // The real agent: the next endpoint; the backoff starts over after a connection that lived 10 s.
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      if (Date.now() - opened >= 10_000) this.failures = 0;
      this.scheduleReconnect(backoffMs(this.failures++, this.random));
    });
    const welcome = new Promise<{ lastEventSeq?: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no welcome within ${WELCOME_TIMEOUT_MS / 1000} s from ${url}`)), WELCOME_TIMEOUT_MS);
      const onMessage = (data: WebSocket.RawData) => {
        const frame = JSON.parse(data.toString()) as { type: string; lastEventSeq?: number };
        if (frame.type === "welcome") {
          clearTimeout(timer);
          ws.off("message", onMessage);
          resolve(frame);
        }
      };
      ws.on("message", onMessage);
      ws.once("close", (code, reason) => {
        clearTimeout(timer);
        reject(new Error(`closed before welcome: ${code} ${reason.toString()}`));
      });
    });
    ws.send(JSON.stringify(this.hello()));
    this.count("hello");
    let w: { lastEventSeq?: number };
    try {
      w = await welcome;
    } catch (e) {
      ws.terminate();
      throw e;
    }
    lived = true;
    this.welcomed = true;
    this.welcomes += 1;
    this.connectedUrl = url;
    this.welcomedAt = Date.now();
    ws.on("message", (data) => this.onMessage(data.toString()));
    this.onAck(w.lastEventSeq ?? 0);
    this.sendReset();
    this.sendTree();
    // Replay what the server has not stored, in order, before anything new.
    for (const e of this.unacked) this.send(e);
    if (this.opts.intervalMs > 0) this.timers.push(setInterval(() => this.tick(), this.opts.intervalMs));
    // Events go on while disconnected (buffered for replay, as a node's reports do), so their timer outlives the socket.
    const eps = this.opts.eventsPerSecond;
    if (eps > 0 && !this.eventTimer) {
      const period = Math.max(MIN_EVENT_PERIOD_MS, 1000 / eps);
      const perTick = (eps * period) / 1000;
      let owed = 0;
      this.eventTimer = setInterval(() => {
        if (this.eventsPaused) return;
        owed += perTick;
        for (; owed >= 1; owed -= 1) this.emitEvent();
      }, period);
    }
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.stopping) return;
      this.attempt().catch(() => {
        // A failed attempt gets no close handler of its own: move on and back off here.
        if (this.stopping) return;
        this.urlIndex = (this.urlIndex + 1) % this.urls.length;
        this.scheduleReconnect(backoffMs(this.failures++, this.random));
      });
    }, delayMs);
  }

  private hello(): object {
    return {
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
      processCount: this.size,
      processLimit: 1_048_576,
      schedulers: 8,
      applications: [
        { name: "synth", vsn: "2.4.1", description: "synthetic load" },
        { name: "kernel", vsn: "8.5.3", description: "ERTS  CXC 138 10" },
        { name: "stdlib", vsn: "4.2", description: "ERTS  CXC 138 10" },
      ],
      releases: [{ name: "synth", vsn: this.opts.releaseVsn ?? "2.4.1", status: "permanent", apps: ["kernel-8.5.3", "stdlib-4.2", "synth-2.4.1"] }],
      capabilities: ["procs", "tree", "detail", "events", "dropped_seqs"],
      config: { getState: false },
      lastEventSeq: this.eventSeq,
      ...(this.opts.group ? { group: this.opts.group } : {}),
    };
  }

  // ---- frames ----

  private recordAt(i: number): SyntheticRecord {
    return { ...this.template.records[i], mailbox: this.mailbox[i], reductions: this.reductions[i] };
  }

  private count(type: string): void {
    this.sent[type] = (this.sent[type] ?? 0) + 1;
  }

  private send(frame: { type: string; [k: string]: unknown }): void {
    const ws = this.ws;
    if (!this.welcomed || !ws || ws.readyState !== WebSocket.OPEN) return;
    this.count(frame.type);
    ws.send(JSON.stringify(frame));
  }

  private sendReset(): void {
    const n = this.size;
    for (let i = 0; i < Math.max(1, n); i += CHUNK) {
      const upsert: SyntheticRecord[] = [];
      for (let j = i; j < Math.min(n, i + CHUNK); j += 1) upsert.push(this.recordAt(j));
      this.send({
        type: "procs",
        seq: this.seq++,
        at: Date.now(),
        reset: i === 0,
        total: n,
        upsert,
        mailbox: [],
        remove: [],
        stats: { scanUs: 2400, sampleUs: 9000, intervalMs: this.opts.intervalMs || 1000, dropped: 0 },
      });
    }
    this.dirty.clear();
  }

  private sendTree(): void {
    this.send({ type: "tree", at: Date.now(), apps: this.template.tree });
  }

  private tick(): void {
    // Random small mailboxes come and go; the well-known ones stay put.
    const n = this.size;
    for (let k = 0; k < this.opts.churn && n > FIRST_ANONYMOUS; k += 1) {
      const i = FIRST_ANONYMOUS + Math.floor(this.random() * (n - FIRST_ANONYMOUS));
      this.mailbox[i] = this.random() < 0.6 ? 0 : Math.floor(this.random() * 40);
      this.reductions[i] += Math.floor(this.random() * 5000);
      this.dirty.set(i, this.mailbox[i]);
    }
    this.sendDelta(true);
  }

  private sendDelta(withTop: boolean): void {
    const pairs = Array.from(this.dirty, ([i, len]) => [this.template.records[i].pid, len]);
    this.dirty.clear();
    const upsert = withTop ? [...this.topBy("mailbox", 10), ...this.template.topMemory.map((i) => this.recordAt(i))] : [];
    this.send({
      type: "procs",
      seq: this.seq++,
      at: Date.now(),
      reset: false,
      total: this.size,
      upsert,
      mailbox: pairs,
      remove: [],
      stats: { scanUs: 2000 + Math.floor(this.random() * 1500), sampleUs: 9000, intervalMs: this.opts.intervalMs || 1000, dropped: 0 },
    });
  }

  /** Stops producing events (the rest goes on), so the unacknowledged ones can drain. */
  pauseEvents(): void {
    this.eventsPaused = true;
  }

  /** A supervisor report with the next seq: buffered until acknowledged, sent now when connected. */
  emitEvent(): void {
    const seq = ++this.eventSeq;
    const i = FIRST_ANONYMOUS + (seq % Math.max(1, this.size - FIRST_ANONYMOUS));
    const e: EventOut = {
      type: "event",
      seq,
      bootId: this.bootId,
      at: Date.now(),
      kind: "supervisor_report",
      context: "child_terminated",
      supervisor: "Elixir.Synth.PoolSupervisor",
      reason: { text: `{loadgen,${seq}}`, truncated: false },
      offender: { id: "Elixir.Synth.Session", pid: this.template.records[Math.min(i, this.size - 1)]?.pid ?? null, restartType: "transient", shutdown: "5000", childType: "worker" },
    };
    if (this.droppedPending) {
      e.droppedSeqs = this.droppedPending;
      this.droppedPending = null;
    }
    if (this.unacked.length >= MAX_UNACKED) {
      const old = this.unacked.shift() as EventOut;
      this.eventsDropped += 1;
      this.droppedPending = this.droppedPending ? [this.droppedPending[0], old.seq] : [old.seq, old.seq];
    }
    this.unacked.push(e);
    this.send(e);
  }

  private onAck(seq: number): void {
    if (seq > this.eventsAcked) this.eventsAcked = seq;
    let k = 0;
    while (k < this.unacked.length && this.unacked[k].seq <= seq) k += 1;
    if (k > 0) this.unacked.splice(0, k);
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private onMessage(text: string): void {
    let frame: { type: string; id?: string; method?: string; params?: { pid?: string }; eventSeq?: number };
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "ack" && typeof frame.eventSeq === "number") {
      this.onAck(frame.eventSeq);
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
      const r = this.record(pid);
      if (!r) {
        reply({ ok: false, error: { code: "not_found", message: `no such process ${pid}` } });
        return;
      }
      reply({ ok: true, result: detail(r) });
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
}

/** The churn stream's seed: the node name too, so nodes of one template differ (FNV-1a). */
function nodeSeed(seed: number, node: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < node.length; i += 1) h = Math.imul(h ^ node.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function detail(r: SyntheticRecord) {
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

/** Creates and connects a synthetic agent. */
export async function startSyntheticAgent(options: SyntheticAgentOptions): Promise<SyntheticAgent> {
  const agent = new SyntheticAgent(options);
  await agent.connect();
  return agent;
}
