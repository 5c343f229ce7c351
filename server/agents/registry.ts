/**
 * The agents connected to this server instance and their live state.
 *
 * Durable facts (the node row, events) go through the database; live data
 * stays here, owned by the instance holding the socket (`Node.instanceId`).
 */
import type { PrismaClient } from "../../generated/prisma/client";
import type { Hub } from "../live/hub";
import { LiveNode } from "./live-node";
import type { AgentFrame, EventFrame, HelloFrame } from "./protocol";
import { AgentRequestError, AgentSession, CLOSE, type SessionHandlers } from "./session";

/** Events waiting to be stored, per agent connection. */
const MAX_PENDING_EVENTS = 20_000;

/** How long a disconnected node's last state stays in memory. */
const KEEP_OFFLINE_MS = 3600_000;

export interface EventSink {
  /** Store events (deduplicated); returns the highest seq now stored for the boot. */
  ingest(node: string, events: EventFrame[]): Promise<number>;
  lastSeq(node: string, bootId: string): Promise<number>;
}

export interface FrameListener {
  (node: string, frame: AgentFrame): void;
}

export class AgentRegistry implements SessionHandlers {
  private readonly sessions = new Map<string, AgentSession>();
  private readonly nodes = new Map<string, LiveNode>();
  private readonly listeners: FrameListener[] = [];
  private readonly publishTimers = new Map<string, NodeJS.Timeout>();
  private readonly pendingEvents = new Map<AgentSession, EventFrame[]>();
  private readonly flushing = new Set<AgentSession>();
  private sweeper: NodeJS.Timeout;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly hub: Hub,
    readonly instanceId: string,
    private readonly events: EventSink,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  /** Frames other parts of the server care about (upgrade progress, command results). */
  onAgentFrame(fn: FrameListener): void {
    this.listeners.push(fn);
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

  async request(node: string, method: string, params: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
    const s = this.session(node);
    if (!s) throw new AgentRequestError("disconnected", `node ${node} is not connected to this server`);
    return s.request(method, params, timeoutMs);
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

  connectedTokenIds(): Set<string> {
    return new Set(Array.from(this.sessions.values(), (s) => s.tokenId));
  }

  // ---- SessionHandlers ----

  async onHello(session: AgentSession, hello: HelloFrame) {
    const previous = this.sessions.get(hello.node);
    if (previous && previous !== session && previous.isOpen) {
      previous.close(CLOSE.replaced, "another connection took over this node name");
    }
    this.sessions.set(hello.node, session);
    const existing = this.nodes.get(hello.node);
    if (existing) existing.reconnected(hello);
    else this.nodes.set(hello.node, new LiveNode(hello.node, hello));
    const now = new Date();
    const row = {
      lastSeenAt: now,
      connectedAt: now,
      instanceId: this.instanceId,
      bootId: hello.bootId,
      otpRelease: hello.otpRelease,
      agentVersion: hello.agentVersion,
      hello: JSON.parse(JSON.stringify(hello)),
    };
    await this.prisma.node.upsert({ where: { name: hello.node }, create: { name: hello.node, ...row }, update: row });
    const lastEventSeq = await this.events.lastSeq(hello.node, hello.bootId);
    this.hub.publish("nodes", { node: hello.node, connected: true });
    this.publishSoon(hello.node);
    return { ok: true as const, lastEventSeq };
  }

  onFrame(session: AgentSession, frame: Exclude<AgentFrame, HelloFrame>): void {
    const live = this.nodes.get(session.node);
    if (!live || this.sessions.get(session.node) !== session) return;
    switch (frame.type) {
      case "procs":
        live.applyProcs(frame);
        this.publishSoon(session.node);
        break;
      case "tree":
        live.applyTree(frame.apps, frame.at);
        this.publishSoon(session.node);
        break;
      case "event":
        this.queueEvent(session, frame);
        break;
      default:
        break;
    }
    for (const fn of this.listeners) fn(session.node, frame);
  }

  onClose(session: AgentSession, _code: number, _reason: string): void {
    this.pendingEvents.delete(session);
    if (this.sessions.get(session.node) !== session) return;
    this.sessions.delete(session.node);
    const live = this.nodes.get(session.node);
    if (live) live.disconnectedAt = Date.now();
    const now = new Date();
    void this.prisma.node
      .updateMany({ where: { name: session.node, instanceId: this.instanceId }, data: { connectedAt: null, instanceId: null, lastSeenAt: now } })
      .catch(() => {});
    this.hub.publish("nodes", { node: session.node, connected: false });
    this.publishSoon(session.node);
  }

  // ---- events: batched inserts, cumulative acks ----

  private queueEvent(session: AgentSession, frame: EventFrame): void {
    const queue = this.pendingEvents.get(session);
    if (queue) {
      queue.push(frame);
      // Backpressure, not drops: stop reading this agent's socket until the
      // database has caught up (a cumulative ack must never skip a gap).
      if (queue.length >= MAX_PENDING_EVENTS) session.socket.pause();
      return;
    }
    this.pendingEvents.set(session, [frame]);
    // Collect what arrives in the same few milliseconds into one insert.
    if (!this.flushing.has(session)) setTimeout(() => void this.flushEvents(session), 20);
  }

  /** One flush at a time per agent; what arrived meanwhile goes in the next. */
  private async flushEvents(session: AgentSession): Promise<void> {
    if (this.flushing.has(session)) return;
    this.flushing.add(session);
    try {
      for (;;) {
        const batch = this.pendingEvents.get(session);
        this.pendingEvents.delete(session);
        if (session.socket.isPaused) session.socket.resume();
        if (!batch || batch.length === 0 || !session.isOpen) return;
        try {
          const upTo = await this.events.ingest(session.node, batch);
          session.send({ type: "ack", eventSeq: upTo });
        } catch (e) {
          // Not acked: the agent keeps the events and sends them again.
          console.error(`[beamdeck] storing ${batch.length} events from ${session.node} failed: ${(e as Error).message}`);
          return;
        }
      }
    } finally {
      this.flushing.delete(session);
    }
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
      .updateMany({ where: { instanceId: this.instanceId }, data: { connectedAt: null, instanceId: null, lastSeenAt: new Date() } })
      .catch(() => {});
  }
}
