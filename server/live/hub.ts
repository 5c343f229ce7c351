/**
 * In-process publish/subscribe for live changes, by topic.
 *
 * Subscriptions (tRPC) listen here; agent sessions, the event ingest and the
 * upgrade workflow publish. On PostgreSQL the server uses PgHub instead
 * (pg-hub.ts, same interface), which also fans changes out to the other
 * instances; the embedded database serves one instance, so this one.
 */
import { EventEmitter } from "node:events";

export type Topic =
  | "nodes" // a node connected, disconnected or changed identity
  | `node:${string}` // live data of one node changed
  | "events" // new events stored
  | "alerts" // alert created or changed
  | `upgrade:${string}` // upgrade progress of one node
  | "rollouts" // a rollout started or changed status
  | `rollout:${string}` // one rollout's state changed
  | "agent-access" // an agent token was revoked or a node name rebound (agents/access-changes.ts)
  | "alert-rules"; // an alert rule changed: every instance's engine reloads its rules

export interface Hub {
  publish(topic: Topic, payload: unknown): void;
  /**
   * Listen from the moment of the call (not from the first `next()`), so a
   * subscriber that yields a snapshot first misses nothing published meanwhile.
   * At most `buffer` payloads wait for a slow consumer; older ones are dropped.
   */
  subscribe(topic: Topic, signal?: AbortSignal, buffer?: number): AsyncIterable<unknown>;
  listen(topic: Topic, fn: (payload: unknown) => void): () => void;
  /** Fan-out to other instances since start (PgHub only): NOTIFYs sent, rows written and read, LISTEN reconnects. */
  readonly stats?: { notifies: number; rowsWritten: number; rowsRead: number; reconnects: number };
}

export class LocalHub implements Hub {
  private readonly ee = new EventEmitter();

  constructor() {
    // Every browser tab holds a few subscriptions: no default cap of 10.
    this.ee.setMaxListeners(0);
  }

  publish(topic: Topic, payload: unknown): void {
    this.ee.emit(topic, payload);
  }

  listen(topic: Topic, fn: (payload: unknown) => void): () => void {
    this.ee.on(topic, fn);
    return () => this.ee.off(topic, fn);
  }

  subscribe(topic: Topic, signal?: AbortSignal, buffer = 256): AsyncIterable<unknown> {
    const queue: unknown[] = [];
    let wake: (() => void) | null = null;
    let done = signal?.aborted ?? false;
    const stop = this.listen(topic, (payload) => {
      if (queue.length >= buffer) queue.shift();
      queue.push(payload);
      wake?.();
    });
    const finish = () => {
      done = true;
      stop();
      wake?.();
    };
    signal?.addEventListener("abort", finish, { once: true });
    return {
      [Symbol.asyncIterator]: () => ({
        async next(): Promise<IteratorResult<unknown>> {
          while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
          wake = null;
          if (queue.length > 0) return { value: queue.shift(), done: false };
          return { value: undefined, done: true };
        },
        async return(): Promise<IteratorResult<unknown>> {
          finish();
          return { value: undefined, done: true };
        },
      }),
    };
  }
}
