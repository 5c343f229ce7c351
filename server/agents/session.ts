/**
 * One connected agent: parses its frames, answers `hello` with `welcome`,
 * applies live data, and carries request/reply with ids and timeouts.
 */
import type { WebSocket } from "ws";
import { randomUUID } from "node:crypto";
import { refusedEventRecord, refusedType, shouldLogRefusal } from "./refusal";
import { parseAgentFrame, PROTOCOL_VERSION, truncateUtf8, type AgentFrame, type HelloFrame, type ServerFrame } from "./protocol";

export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  /** Storing what the agent sent failed: nothing was acked, the agent replays after reconnecting. */
  storageFailed: 1011,
  badFrame: 4400,
  revoked: 4401,
  wrongNode: 4403,
  replaced: 4409,
  /** The agent sent more process records than the welcome's `maxProcessRecords`. */
  tooManyRecords: 4413,
} as const;

export class AgentRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "AgentRequestError";
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export interface SessionHandlers {
  /** Decide on the hello; returns the welcome's lastEventSeq or a close reason. */
  onHello(session: AgentSession, hello: HelloFrame): Promise<{ ok: true; lastEventSeq: number; maxProcessRecords: number } | { ok: false; code: number; reason: string }>;
  onFrame(session: AgentSession, frame: Exclude<AgentFrame, HelloFrame>): void;
  /** A frame the schema refused (counted; `type` null when it had none). */
  onRefused(session: AgentSession, type: string | null, reason: string): void;
  onClose(session: AgentSession, code: number, reason: string): void;
}

const HELLO_TIMEOUT_MS = 10_000;

export class AgentSession {
  readonly id = randomUUID();
  hello: HelloFrame | null = null;
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private closed = false;
  // Frames are handled strictly in arrival order, even across the async hello.
  private chain: Promise<void> = Promise.resolve();
  readonly openedAt = Date.now();
  framesIn = 0;
  bytesIn = 0;
  /** Frames the schema refused on this socket (refusal.ts). */
  refused = 0;
  /** The node's takeover count when this socket took it (set at hello). */
  epoch = 0;
  /** A fleet token's group: the hello must name it. */
  fleetGroup: string | null = null;

  constructor(
    readonly socket: WebSocket,
    readonly node: string,
    readonly tokenId: string,
    readonly remoteAddress: string | undefined,
    private readonly handlers: SessionHandlers,
    private readonly maxFrame = 1024 * 1024,
  ) {
    const helloTimer = setTimeout(() => this.close(CLOSE.badFrame, "no hello within 10 s"), HELLO_TIMEOUT_MS);
    socket.on("message", (data, isBinary) => {
      if (isBinary) return this.close(CLOSE.badFrame, "binary frames are not part of the protocol");
      const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
      if (size > this.maxFrame) return this.close(CLOSE.badFrame, `frame of ${size} bytes exceeds the ${this.maxFrame}-byte cap`);
      const text = data.toString();
      this.framesIn += 1;
      this.bytesIn += text.length;
      this.chain = this.chain.then(() => this.receive(text, helloTimer)).catch(() => this.close(CLOSE.badFrame, "internal error handling frame"));
    });
    socket.on("close", (code, reason) => {
      clearTimeout(helloTimer);
      this.closed = true;
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new AgentRequestError("disconnected", "the agent disconnected before answering"));
      }
      this.pending.clear();
      this.handlers.onClose(this, code, reason.toString());
    });
    // Without an 'error' listener a socket error would crash the process.
    socket.on("error", () => this.close(CLOSE.badFrame, "socket error"));
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  private async receive(text: string, helloTimer: NodeJS.Timeout): Promise<void> {
    if (this.closed) return;
    const parsed = parseAgentFrame(text);
    if (!parsed.ok) {
      this.refused += 1;
      const type = refusedType(parsed.type);
      if (shouldLogRefusal(this.refused)) console.warn(`[beamdeck] ${this.node}: refused a "${type}" frame (${this.refused} on this socket): ${JSON.stringify(parsed.reason)}`);
      this.handlers.onRefused(this, type, parsed.reason);
      // An event is accounted for in its place, not closed on: the agent would replay it forever.
      const record = this.hello ? refusedEventRecord(parsed.json, parsed.reason) : null;
      if (record) return this.handlers.onFrame(this, record);
      return this.close(CLOSE.badFrame, parsed.reason);
    }
    const frame = parsed.frame;
    if (frame.type === "hello") {
      if (this.hello) return this.close(CLOSE.badFrame, "second hello on one connection");
      clearTimeout(helloTimer);
      if (frame.node !== this.node) {
        return this.close(CLOSE.badFrame, `hello names node ${frame.node} but X-Beamdeck-Node said ${this.node}`);
      }
      this.hello = frame;
      const decision = await this.handlers.onHello(this, frame);
      if (!decision.ok) return this.close(decision.code, decision.reason);
      this.send({ type: "welcome", protocol: PROTOCOL_VERSION, lastEventSeq: decision.lastEventSeq, serverTime: Date.now(), maxProcessRecords: decision.maxProcessRecords });
      return;
    }
    if (!this.hello) return this.close(CLOSE.badFrame, `${frame.type} frame before hello`);
    if (frame.type === "reply") {
      const p = this.pending.get(frame.id);
      if (!p) return; // answered after its timeout: nothing waits for it any more
      this.pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.ok) p.resolve(frame.result);
      else p.reject(new AgentRequestError(frame.error?.code ?? "error", frame.error?.message ?? "no message"));
      return;
    }
    this.handlers.onFrame(this, frame);
  }

  send(frame: ServerFrame): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(JSON.stringify(frame));
  }

  request(method: string, params: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    if (this.closed) return Promise.reject(new AgentRequestError("disconnected", "the agent is not connected"));
    const id = `r-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      // The server waits a little longer than the agent, so the agent's own
      // timeout reply (with its reason) normally arrives first.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AgentRequestError("timeout", `the agent did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs + 1000);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ type: "request", id, method, params, timeoutMs });
    });
  }

  /** Does the peer answer a WebSocket ping within `timeoutMs`? */
  probe(timeoutMs = 2000): Promise<boolean> {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (alive: boolean) => {
        clearTimeout(timer);
        this.socket.off("pong", onPong);
        resolve(alive);
      };
      const onPong = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.socket.on("pong", onPong);
      try {
        this.socket.ping();
      } catch {
        done(false);
      }
    });
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.socket.close(code, truncateUtf8(reason, 123));
    } catch {
      this.socket.terminate();
    }
    // A peer that never completes the close handshake is cut off.
    setTimeout(() => this.socket.terminate(), 5000).unref();
  }
}
