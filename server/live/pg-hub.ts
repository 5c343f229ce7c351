/**
 * The Hub for several instances on one PostgreSQL (issue 16).
 *
 * Local subscribers get local publishes at once (a LocalHub inside). For the
 * other instances each publish is also queued and written as a row of
 * `LiveChange`; one INSERT and one NOTIFY per flush (every FLUSH_MS) — NOTIFY
 * is a doorbell carrying only this instance's id and its highest row id,
 * because its payload is capped at 8000 bytes and notifying commits are
 * serialised behind a global lock. Receivers read the rows after the last id
 * they saw. One dedicated connection LISTENs; it reconnects with backoff and
 * catches up from its last id.
 *
 * Row ids come from a sequence, so a reader can see id 12 committed before
 * another instance's 11: the cursor stops at such a gap and waits for it
 * (GAP_WAIT_MS) before moving past it (a rolled-back insert leaves one forever).
 */
import pg from "pg";
import { type Hub, LocalHub, type Topic } from "./hub";

const CHANNEL = "beamdeck_live";
/** One NOTIFY per instance per FLUSH_MS at most (the 10–50 ms). */
export const FLUSH_MS = 25;
/** Rows older than this are pruned: catch-up after a reconnect reaches back this far. */
export const RETENTION_MS = 60_000;
const PRUNE_EVERY_MS = 10_000;
/** How long a reader waits for a lower id still uncommitted before moving past it. */
const GAP_WAIT_MS = 2000;
/** Without a doorbell (lost during a reconnect), read anyway this often. */
const POLL_MS = 2000;
/** Bounded: what waits to be written while the database is away; the oldest go first. */
const MAX_QUEUED = 10_000;
const INSERT_BATCH = 500;
const READ_BATCH = 1000;
const QUERY_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5000;
const BACKOFF_MAX_MS = 5000;

interface Row {
  id: string;
  instanceId: string;
  topic: string;
  payload: unknown;
}

export class PgHub implements Hub {
  private readonly local = new LocalHub();
  private readonly pool: pg.Pool;
  private queue: { topic: Topic; payload: unknown }[] = [];
  private dropped = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private listener: pg.Client | null = null;
  private closed = false;
  private backoffMs = 250;
  /** Every id ≤ cursor has been delivered (or given up on). */
  private cursor = 0n;
  /** Ids above the cursor already delivered (a gap lies below them). */
  private readonly ahead = new Set<bigint>();
  private gapSince: number | null = null;
  private reading: Promise<void> | null = null;
  private readAgain = false;
  private timers: NodeJS.Timeout[] = [];
  /** Counters for /metrics and the bench. */
  readonly stats = { notifies: 0, rowsWritten: 0, rowsRead: 0, reconnects: 0 };

  constructor(
    private readonly url: string,
    readonly instanceId: string,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, query_timeout: QUERY_TIMEOUT_MS });
    // An idle pooled connection that dies must not crash the process; the next query reconnects.
    this.pool.on("error", (e) => console.error(`[beamdeck] live fan-out connection: ${e.message}`));
  }

  /** Start after the migrations ran: changes from before this point are not replayed. */
  async start(): Promise<void> {
    const { rows } = await this.pool.query<{ max: string | null }>(`SELECT max("id")::text AS max FROM "LiveChange"`);
    this.cursor = BigInt(rows[0]?.max ?? "0");
    await this.connectListener();
    const poll = setInterval(() => this.readSoon(), POLL_MS);
    const prune = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.timers.push(poll, prune);
    for (const t of this.timers) t.unref();
  }

  publish(topic: Topic, payload: unknown): void {
    this.local.publish(topic, payload);
    if (this.closed) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.queue.shift();
      this.dropped += 1;
    }
    this.queue.push({ topic, payload });
    this.scheduleFlush(FLUSH_MS);
  }

  private scheduleFlush(ms: number): void {
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = null;
      void this.flush();
    }, ms);
  }

  listen(topic: Topic, fn: (payload: unknown) => void): () => void {
    return this.local.listen(topic, fn);
  }

  subscribe(topic: Topic, signal?: AbortSignal, buffer?: number): AsyncIterable<unknown> {
    return this.local.subscribe(topic, signal, buffer);
  }

  /** Write what is queued as rows, then ring once. One flush at a time; on failure the rows wait for the next. */
  flush(): Promise<void> {
    // `.finally` runs after this assignment even when there is nothing to write (an async
    // function's own `finally` would run before it, and leave a settled promise here for good).
    this.flushing ??= this.drain().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.slice(0, INSERT_BATCH);
        const { rows } = await this.pool.query<{ max: string }>(
          `WITH ins AS (INSERT INTO "LiveChange" ("instanceId", "topic", "payload")
             SELECT $1, t, p FROM unnest($2::text[], $3::jsonb[]) AS x(t, p) RETURNING "id")
           SELECT max("id")::text AS max FROM ins`,
          [this.instanceId, batch.map((c) => c.topic), batch.map((c) => JSON.stringify(c.payload ?? null))],
        );
        this.queue.splice(0, batch.length);
        this.stats.rowsWritten += batch.length;
        await this.pool.query("SELECT pg_notify($1, $2)", [CHANNEL, `${this.instanceId} ${rows[0]?.max ?? ""}`]);
        this.stats.notifies += 1;
      }
      if (this.dropped > 0) {
        console.warn(`[beamdeck] live fan-out: dropped ${this.dropped} change(s) while the database was unreachable`);
        this.dropped = 0;
      }
    } catch (e) {
      console.error(`[beamdeck] live fan-out write failed (retrying): ${(e as Error).message}`);
      if (!this.closed) this.scheduleFlush(500);
    }
  }

  private async connectListener(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, query_timeout: QUERY_TIMEOUT_MS });
    const lost = (why: string) => {
      if (this.listener !== client) return;
      this.listener = null;
      client.removeAllListeners("notification");
      void client.end().catch(() => {});
      if (this.closed) return;
      console.error(`[beamdeck] live fan-out: LISTEN connection lost (${why}); reconnecting`);
      this.reconnectLater();
    };
    client.on("error", (e) => lost(e.message));
    client.on("end", () => lost("ended"));
    client.on("notification", (n) => {
      if (n.channel === CHANNEL && !n.payload?.startsWith(`${this.instanceId} `)) this.readSoon();
    });
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      lost((e as Error).message);
      throw e;
    }
    this.backoffMs = 250;
    // What was published while nobody listened.
    this.readSoon();
  }

  private reconnectLater(): void {
    const wait = this.backoffMs * (0.5 + Math.random());
    this.backoffMs = Math.min(BACKOFF_MAX_MS, this.backoffMs * 2);
    const t = setTimeout(() => {
      this.timers = this.timers.filter((x) => x !== t);
      if (this.closed || this.listener) return;
      this.stats.reconnects += 1;
      this.connectListener().catch(() => {});
    }, wait);
    t.unref();
    this.timers.push(t);
  }

  /** Read new rows; a doorbell arriving during a read makes one more read. */
  private readSoon(): void {
    if (this.closed) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = this.readAll().finally(() => {
      this.reading = null;
    });
  }

  private async readAll(): Promise<void> {
    try {
      do {
        this.readAgain = false;
        await this.readRows();
      } while (this.readAgain && !this.closed);
    } catch (e) {
      if (!this.closed) console.error(`[beamdeck] live fan-out read failed: ${(e as Error).message}`);
    }
  }

  private async readRows(): Promise<void> {
    for (;;) {
      const { rows } = await this.pool.query<Row>(`SELECT "id"::text AS id, "instanceId", "topic", "payload" FROM "LiveChange" WHERE "id" > $1 ORDER BY "LiveChange"."id" LIMIT ${READ_BATCH}`, [
        this.cursor.toString(),
      ]);
      for (const r of rows) {
        const id = BigInt(r.id);
        if (this.ahead.has(id)) continue;
        this.ahead.add(id);
        this.stats.rowsRead += 1;
        // This instance's own changes reached its subscribers when published.
        if (r.instanceId !== this.instanceId) this.local.publish(r.topic as Topic, r.payload);
      }
      this.advance();
      if (rows.length < READ_BATCH || this.closed) return;
    }
  }

  /** Move the cursor over delivered ids; past a gap only after it waited GAP_WAIT_MS. */
  private advance(): void {
    for (;;) {
      while (this.ahead.delete(this.cursor + 1n)) this.cursor += 1n;
      if (this.ahead.size === 0) {
        this.gapSince = null;
        return;
      }
      this.gapSince ??= Date.now();
      if (Date.now() - this.gapSince < GAP_WAIT_MS) {
        // Look again soon for the missing id, doorbell or not.
        const t = setTimeout(() => this.readSoon(), 100);
        t.unref();
        return;
      }
      let lowest: bigint | null = null;
      for (const id of this.ahead) if (lowest === null || id < lowest) lowest = id;
      this.cursor = (lowest ?? this.cursor + 1n) - 1n;
      this.gapSince = null;
    }
  }

  private async prune(): Promise<void> {
    // now() and the column's default are both the database's clock: no skew between instances.
    await this.pool.query(`DELETE FROM "LiveChange" WHERE "createdAt" < (now() - $1 * interval '1 millisecond')::timestamp`, [RETENTION_MS]).catch((e: Error) => {
      console.error(`[beamdeck] pruning live changes failed: ${e.message}`);
    });
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.flush();
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const t of this.timers) clearTimeout(t);
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => {});
    await this.reading;
    await this.pool.end().catch(() => {});
  }
}
