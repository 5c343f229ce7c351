/**
 * The agents connected to this server instance and their live state.
 *
 * Durable facts (the node row, events) go through the database; live data
 * stays here, owned by the instance holding the socket (`Node.instanceId`).
 */
import type { PrismaClient } from "../../generated/prisma/client";
import { regressionBootId, regressionEvent, sequenceEvents } from "../events/sequence";
import type { Hub } from "../live/hub";
import { DB_NOW, dbNowPlus } from "../storage/db-clock";
import type { InstanceLeases } from "./leases";
import { instanceAnswers } from "../gateway/instance-probe";
import { LiveNode } from "./live-node";
import type { AgentFrame, EventFrame, HelloFrame } from "./protocol";
import { parseReply, type AgentMethod, type ReplyOf } from "./replies";
import { AgentRequestError, type AgentSession, CLOSE, type SessionHandlers } from "./session";

/** Events waiting to be stored, per agent connection. */
const MAX_PENDING_EVENTS = 20_000;

/** How long a disconnected node's last state stays in memory. */
const KEEP_OFFLINE_MS = 3600_000;

/** Per-node process-record cap: room for a node at 1M processes, plus margin. */
export const DEFAULT_MAX_PROCESS_RECORDS = 1_100_000;

export interface EventSink {
  /** Store events (deduplicated); throws when storing fails. */
  ingest(node: string, events: EventFrame[]): Promise<number>;
  lastSeq(node: string, bootId: string): Promise<number>;
  /** Move stored events of a boot above `aboveSeq` under another boot id; returns how many. */
  displace(node: string, bootId: string, aboveSeq: number, asBootId: string): Promise<number>;
}

export type FrameListener = (node: string, frame: AgentFrame) => void;
export type RefusalListener = (node: string, type: string | null) => void;

export class AgentRegistry implements SessionHandlers {
  private readonly sessions = new Map<string, AgentSession>();
  private readonly nodes = new Map<string, LiveNode>();
  private readonly listeners: FrameListener[] = [];
  private readonly refusalListeners: RefusalListener[] = [];
  private readonly publishTimers = new Map<string, NodeJS.Timeout>();
  private readonly pendingEvents = new Map<AgentSession, EventFrame[]>();
  private readonly flushing = new Set<AgentSession>();
  /** The contiguous prefix of the session's boot that is stored and acked. */
  private readonly acked = new Map<AgentSession, number>();
  private sweeper: NodeJS.Timeout;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly hub: Hub,
    readonly instanceId: string,
    private readonly events: EventSink,
    /** Which lease is current (on the database's clock): for whoever reads node rows. */
    readonly leases: InstanceLeases,
    readonly maxProcessRecords = DEFAULT_MAX_PROCESS_RECORDS,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  /** Frames other parts of the server care about (upgrade progress, command results). */
  onAgentFrame(fn: FrameListener): void {
    this.listeners.push(fn);
  }

  /** Frames the protocol's schema refused (counted by /metrics). */
  onAgentRefusal(fn: RefusalListener): void {
    this.refusalListeners.push(fn);
  }

  live(node: string): LiveNode | undefined {
    return this.nodes.get(node);
  }

  liveNodes(): LiveNode[] {
    return Array.from(this.nodes.values());
  }

  session(node: string): AgentSession | undefined {
    const s = this.sessions.get(node);
    return s?.isOpen ? s : undefined;
  }

  /**
   * Ask the node's agent; its reply is parsed by the method's schema
   * (replies.ts). A reply that does not match is an `AgentRequestError`
   * with code `bad_reply`, never a cast.
   */
  async request<M extends AgentMethod>(node: string, method: M, params: Record<string, unknown>, timeoutMs = 5000): Promise<ReplyOf<M>> {
    const s = this.session(node);
    if (!s) throw new AgentRequestError("disconnected", `node ${node} is not connected to this server`);
    const parsed = parseReply(method, await s.request(method, params, timeoutMs));
    if (!parsed.ok) throw new AgentRequestError("bad_reply", parsed.problem);
    return parsed.reply;
  }

  /** Disconnect every agent using this token (revocation takes effect at once). */
  disconnectToken(tokenId: string, reason: string): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (s.tokenId === tokenId && s.isOpen) {
        s.close(CLOSE.revoked, reason);
        n += 1;
      }
    }
    return n;
  }

  /** Names whose sockets this instance holds now. */
  heldNodeNames(): string[] {
    return Array.from(this.sessions.keys());
  }

  connectedTokenIds(): Set<string> {
    return new Set(Array.from(this.sessions.values(), (s) => s.tokenId));
  }

  /**
   * Is a socket under this name live: open here and answering a ping, or
   * held by another instance whose lease is current and which is up (a
   * killed instance's lease outlives it)? A fleet token never takes over
   * such a name.
   */
  async answersKeepalive(node: string): Promise<boolean> {
    const s = this.session(node);
    if (s) return s.probe();
    const row = await this.prisma.node.findUnique({ where: { name: node }, select: { instanceId: true, leaseExpiresAt: true } });
    return row?.instanceId && this.leases.heldElsewhere(row) ? instanceAnswers(this.prisma, row.instanceId) : false;
  }

  /** An admin rebound or released the name: a socket under another token goes. */
  bindingChanged(node: string, tokenId: string | null): void {
    const s = this.session(node);
    if (s && tokenId !== null && s.tokenId !== tokenId) s.close(CLOSE.wrongNode, `node name ${node} was rebound to another agent token`);
  }

  /** Nodes another instance held until its lease ran out. */
  leasesReleased(nodes: string[]): void {
    for (const node of nodes) {
      if (this.session(node)) continue;
      this.hub.publish("nodes", { node, connected: false });
    }
  }

  // ---- SessionHandlers ----

  async onHello(session: AgentSession, hello: HelloFrame) {
    if (session.fleetGroup !== null && hello.group !== session.fleetGroup) {
      return { ok: false as const, code: CLOSE.wrongNode, reason: `this fleet token serves group ${session.fleetGroup}, not ${hello.group ?? "(none)"}` };
    }
    const previous = this.sessions.get(hello.node);
    if (previous && previous !== session && previous.isOpen) {
      previous.close(CLOSE.replaced, "another connection took over this node name");
    }
    this.sessions.set(hello.node, session);
    const existing = this.nodes.get(hello.node);
    if (existing) existing.reconnected(hello);
    else this.nodes.set(hello.node, new LiveNode(hello.node, hello));
    // One statement (the handshake's last round trip): the row with this instance's lease on the database's clock, a new
    // epoch (every takeover is one: only the newest socket's events count), and the boot's highest stored seq.
    const [taken] = await this.prisma.$queryRawUnsafe<{ epoch: number; lastSeq: number }[]>(
      `INSERT INTO "Node" ("name", "lastSeenAt", "connectedAt", "instanceId", "leaseExpiresAt", "bootId", "otpRelease", "agentVersion", "hello", "epoch")
       VALUES ($1, ${DB_NOW}, ${DB_NOW}, $2, ${dbNowPlus("$3")}, $4, $5, $6, $7::jsonb, 1)
       ON CONFLICT ("name") DO UPDATE SET "lastSeenAt" = EXCLUDED."lastSeenAt", "connectedAt" = EXCLUDED."connectedAt",
         "instanceId" = EXCLUDED."instanceId", "leaseExpiresAt" = EXCLUDED."leaseExpiresAt", "bootId" = EXCLUDED."bootId",
         "otpRelease" = EXCLUDED."otpRelease", "agentVersion" = EXCLUDED."agentVersion", "hello" = EXCLUDED."hello", "epoch" = "Node"."epoch" + 1
       RETURNING "epoch", (SELECT COALESCE(MAX("seq"), 0)::int FROM "Event" WHERE "node" = $1 AND "bootId" = $4) AS "lastSeq"`,
      hello.node,
      this.instanceId,
      this.leases.leaseMs,
      hello.bootId,
      hello.otpRelease,
      hello.agentVersion,
      JSON.stringify(hello),
    );
    if (!taken) throw new Error(`node ${hello.node}: the node row was not written`);
    const { epoch } = taken;
    session.epoch = epoch;
    const lastEventSeq = await this.checkRegression(hello, epoch, taken.lastSeq);
    this.acked.set(session, lastEventSeq);
    this.hub.publish("nodes", { node: hello.node, connected: true });
    this.publishSoon(hello.node);
    return { ok: true as const, lastEventSeq, maxProcessRecords: this.maxProcessRecords };
  }

  /**
   * The agent says which seq it is at; stored seqs beyond that were never
   * sent by it (forged by an earlier connection under its name). They are
   * set aside, recorded as a regression (which pages), and the agent's own
   * events are stored in their place.
   */
  private async checkRegression(hello: HelloFrame, epoch: number, stored: number): Promise<number> {
    if (stored <= hello.lastEventSeq) return stored;
    const moved = await this.events.displace(hello.node, hello.bootId, hello.lastEventSeq, `${regressionBootId(hello.bootId)}:e${epoch}`);
    console.warn(`[beamdeck] ${hello.node}: stored seqs up to ${stored} but its agent is at ${hello.lastEventSeq}; set aside ${moved} event(s)`);
    await this.events.ingest(hello.node, [regressionEvent(hello.bootId, epoch, hello.lastEventSeq, stored)]);
    return this.events.lastSeq(hello.node, hello.bootId);
  }

  onFrame(session: AgentSession, frame: Exclude<AgentFrame, HelloFrame>): void {
    const live = this.nodes.get(session.node);
    if (!live || this.sessions.get(session.node) !== session) return;
    switch (frame.type) {
      case "procs":
        live.applyProcs(frame);
        if (live.processes.size > this.maxProcessRecords) {
          // Free the memory now rather than keeping it for the offline hour.
          live.processes.clear();
          session.close(CLOSE.tooManyRecords, `process table over the cap of ${this.maxProcessRecords} records (welcome.maxProcessRecords)`);
          return;
        }
        this.publishSoon(session.node);
        break;
      case "tree":
        live.applyTree(frame.apps, frame.at);
        this.publishSoon(session.node);
        break;
      case "event":
        if (frame.bootId !== session.hello?.bootId) {
          session.close(CLOSE.badFrame, "event for another boot than this connection's hello");
          return;
        }
        this.queueEvent(session, frame);
        break;
      default:
        break;
    }
    for (const fn of this.listeners) fn(session.node, frame);
  }

  onRefused(session: AgentSession, type: string | null, _reason: string): void {
    for (const fn of this.refusalListeners) fn(session.node, type);
  }

  onClose(session: AgentSession, _code: number, _reason: string): void {
    this.pendingEvents.delete(session);
    this.acked.delete(session);
    if (this.sessions.get(session.node) !== session) return;
    this.sessions.delete(session.node);
    const live = this.nodes.get(session.node);
    if (live) live.disconnectedAt = Date.now();
    // On the database's clock: node_down on every instance compares against it.
    const now = new Date(this.leases.dbNow());
    void this.prisma.node
      .updateMany({
        where: { name: session.node, instanceId: this.instanceId, epoch: session.epoch },
        data: { connectedAt: null, instanceId: null, leaseExpiresAt: null, lastSeenAt: now },
      })
      .catch(() => {});
    this.hub.publish("nodes", { node: session.node, connected: false });
    this.publishSoon(session.node);
  }

  // ---- events: batched inserts, acks of the contiguous prefix ----

  private queueEvent(session: AgentSession, frame: EventFrame): void {
    const queue = this.pendingEvents.get(session);
    if (queue) {
      queue.push(frame);
      // Backpressure, not drops: stop reading this agent's socket until the
      // database has caught up.
      if (queue.length >= MAX_PENDING_EVENTS) session.socket.pause();
      return;
    }
    this.pendingEvents.set(session, [frame]);
    // Collect what arrives in the same few milliseconds into one insert.
    if (!this.flushing.has(session)) setTimeout(() => void this.flushEvents(session), 20);
  }

  /**
   * One flush at a time per agent; what arrived meanwhile goes in the next.
   * A storage failure closes the socket (1011): nothing past the stored
   * prefix is acked, and the agent replays on its next connection.
   */
  private async flushEvents(session: AgentSession): Promise<void> {
    if (this.flushing.has(session)) return;
    this.flushing.add(session);
    try {
      for (;;) {
        const batch = this.pendingEvents.get(session);
        this.pendingEvents.delete(session);
        if (session.socket.isPaused) session.socket.resume();
        if (!batch || batch.length === 0 || !session.isOpen || !session.hello) return;
        try {
          if (!(await this.isCurrentEpoch(session))) {
            session.close(CLOSE.replaced, "another connection took over this node name");
            return;
          }
          const seq = sequenceEvents(this.acked.get(session) ?? 0, session.hello.bootId, batch);
          if (seq.store.length > 0) await this.events.ingest(session.node, seq.store);
          this.acked.set(session, seq.acked);
          session.send({ type: "ack", eventSeq: seq.acked });
        } catch (e) {
          console.error(`[beamdeck] storing ${batch.length} events from ${session.node} failed: ${(e as Error).message}`);
          this.pendingEvents.delete(session);
          session.close(CLOSE.storageFailed, "storing events failed; reconnect and send them again");
          return;
        }
      }
    } finally {
      this.flushing.delete(session);
    }
  }

  /** Events count only from the socket of the node's current epoch (any instance may have taken it over). */
  private async isCurrentEpoch(session: AgentSession): Promise<boolean> {
    if (this.sessions.get(session.node) !== session) return false;
    const row = await this.prisma.node.findUnique({ where: { name: session.node }, select: { epoch: true } });
    return row?.epoch === session.epoch;
  }

  /** Coalesce live-change notifications to at most ~4 per second per node. */
  private publishSoon(node: string): void {
    if (this.publishTimers.has(node)) return;
    this.publishTimers.set(
      node,
      setTimeout(() => {
        this.publishTimers.delete(node);
        const live = this.nodes.get(node);
        if (live) this.hub.publish(`node:${node}`, live.summary());
      }, 250),
    );
  }

  private sweep(): void {
    const cutoff = Date.now() - KEEP_OFFLINE_MS;
    for (const [name, live] of this.nodes) {
      if (live.disconnectedAt !== null && live.disconnectedAt < cutoff) this.nodes.delete(name);
    }
  }

  /** Close every agent socket (server shutdown). */
  async shutdown(): Promise<void> {
    clearInterval(this.sweeper);
    for (const t of this.publishTimers.values()) clearTimeout(t);
    for (const s of this.sessions.values()) s.close(CLOSE.goingAway, "server shutting down");
    await this.prisma.node
      .updateMany({ where: { instanceId: this.instanceId }, data: { connectedAt: null, instanceId: null, leaseExpiresAt: null, lastSeenAt: new Date(this.leases.dbNow()) } })
      .catch(() => {});
  }
}
