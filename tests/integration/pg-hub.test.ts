/**
 * PgHub on a real PostgreSQL: two hubs (as two instances would hold) share
 * one database. Local publishes reach local subscribers at once; the other
 * hub gets them through rows and a batched NOTIFY; a lost LISTEN connection
 * reconnects and catches up; rows are the payload, NOTIFY only a key.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgHub } from "../../server/live/pg-hub";
import { openDatabase, type OpenDatabase } from "../../server/storage/db";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { waitFor } from "../support/ports";

let server: TestPostgres;
let url: string;
let db: OpenDatabase;
const hubs: PgHub[] = [];

async function hub(id: string): Promise<PgHub> {
  const h = new PgHub(url, id);
  await h.start();
  hubs.push(h);
  return h;
}

function collect(h: PgHub, topic: "events" | `node:${string}`): unknown[] {
  const got: unknown[] = [];
  h.listen(topic, (p) => got.push(p));
  return got;
}

beforeAll(async () => {
  server = await startPostgres();
  url = await server.createDatabase(`hub_${Date.now()}`);
  // The migrations make the LiveChange table.
  db = await openDatabase("test", { DATABASE_URL: url, BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-hub-")) });
});
afterAll(async () => {
  for (const h of hubs) await h.close();
  await db?.close();
  await server?.stop();
});

describe("PgHub", () => {
  it("delivers locally at once and to the other instance through rows, with few NOTIFYs", async () => {
    const a = await hub("inst-a");
    const b = await hub("inst-b");
    const onA = collect(a, "node:n1@h");
    const onB = collect(b, "node:n1@h");
    for (let i = 0; i < 200; i += 1) a.publish("node:n1@h", { i });
    // Local: synchronously, before any database round trip.
    expect(onA).toHaveLength(200);
    await waitFor("200 changes on the other instance", async () => onB.length >= 200, 10_000);
    expect(onB).toEqual(Array.from({ length: 200 }, (_, i) => ({ i })));
    // Published in one tick: batched into a handful of rows-inserts and doorbells, not 200.
    expect(a.stats.rowsWritten).toBe(200);
    expect(a.stats.notifies).toBeGreaterThan(0);
    expect(a.stats.notifies).toBeLessThanOrEqual(5);
    // A hub does not hear its own rows a second time.
    await new Promise((r) => setTimeout(r, 300));
    expect(onA).toHaveLength(200);
  });

  it("keeps a large payload in the row (NOTIFY's 8000-byte limit does not apply)", async () => {
    const a = await hub("inst-c");
    const b = await hub("inst-d");
    const onB = collect(b, "events");
    const big = { text: "x".repeat(50_000) };
    a.publish("events", big);
    await waitFor("the large change on the other instance", async () => onB.length >= 1, 10_000);
    expect(onB[0]).toEqual(big);
  });

  it("reconnects a killed LISTEN connection and catches up on what was published meanwhile", async () => {
    const a = await hub("inst-e");
    const b = await hub("inst-f");
    const onB = collect(b, "node:n2@h");
    // Kill b's LISTEN session from the database side, then publish while it is away.
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const { rowCount } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN beamdeck_live' AND pid <> pg_backend_pid()`,
      );
      expect(rowCount).toBeGreaterThan(0);
    } finally {
      await admin.end();
    }
    for (let i = 0; i < 20; i += 1) a.publish("node:n2@h", { i });
    await waitFor("the 20 changes after the reconnect", async () => onB.length >= 20, 15_000);
    expect(onB).toEqual(Array.from({ length: 20 }, (_, i) => ({ i })));
    await waitFor("a reconnect counted", async () => b.stats.reconnects > 0, 10_000);
  });

  it("waits for a lower id committed after a higher one (ids come from a sequence, commits in any order)", async () => {
    const a = await hub("inst-i");
    const b = await hub("inst-j");
    const onB = collect(b, "node:n4@h");
    const slow = new pg.Client({ connectionString: url });
    await slow.connect();
    try {
      // Another instance's insert takes its id now and commits later.
      await slow.query("BEGIN");
      await slow.query(`INSERT INTO "LiveChange" ("instanceId", "topic", "payload") VALUES ('inst-slow', 'node:n4@h', '{"late": true}')`);
      a.publish("node:n4@h", { early: true });
      await waitFor("the higher id first", async () => onB.length >= 1, 10_000);
      await slow.query("COMMIT");
      await slow.query(`SELECT pg_notify('beamdeck_live', 'inst-slow 0')`);
      await waitFor("the lower id, committed late", async () => onB.length >= 2, 10_000);
      expect(onB).toEqual([{ early: true }, { late: true }]);
    } finally {
      await slow.end();
    }
  });

  it("goes on writing after a flush found nothing to write", async () => {
    const a = await hub("inst-k");
    const b = await hub("inst-l");
    const onB = collect(b, "node:n5@h");
    await a.flush();
    await a.flush();
    a.publish("node:n5@h", { after: "empty flushes" });
    await waitFor("the change after empty flushes", async () => onB.length >= 1, 10_000);
    expect(onB).toEqual([{ after: "empty flushes" }]);
  });

  it("does not replay changes from before it started", async () => {
    const a = await hub("inst-g");
    a.publish("node:n3@h", { before: true });
    await a.flush();
    const late = await hub("inst-h");
    const onLate = collect(late, "node:n3@h");
    a.publish("node:n3@h", { before: false });
    await waitFor("the change after the start", async () => onLate.length >= 1, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(onLate).toEqual([{ before: false }]);
  });
});
