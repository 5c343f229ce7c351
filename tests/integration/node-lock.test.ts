/**
 * The per-node upgrade lock (server/upgrades/node-lock.ts) on the two
 * databases it runs on: a real PostgreSQL shared by two clients (two server
 * instances), and the embedded PGlite. One holder at a time however the
 * requests interleave; the holder renews and releases, nobody else can; an
 * expired lock is taken over; the same holder (a resumed rollout) re-takes
 * its own.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrismaClient } from "../../generated/prisma/client";
import { openDatabase } from "../../server/storage/db";
import { pgAdapter } from "../../server/storage/pg-adapter";
import { acquireNodeLock, nodeLockHolder, releaseNodeLock, renewNodeLock } from "../../server/upgrades/node-lock";
import { startPostgres, type TestPostgres } from "../support/postgres";

type Db = { prisma: PrismaClient };
type Opened = { a: Db; b: Db; close(): Promise<void> };

const backends = [
  {
    name: "PostgreSQL, two instances",
    async open(): Promise<Opened> {
      const pg: TestPostgres = await startPostgres();
      const url = await pg.createDatabase("locks");
      // The first client migrates (as a server does); the second is another instance's.
      const a = await openDatabase("test", { DATABASE_URL: url, BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-lock-")) });
      const b = { prisma: new PrismaClient({ adapter: pgAdapter(url) }) };
      return {
        a,
        b,
        async close() {
          await b.prisma.$disconnect();
          await a.close();
          await pg.stop();
        },
      };
    },
  },
  {
    name: "PGlite",
    async open(): Promise<Opened> {
      const a = await openDatabase("test", { BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-lock-")) });
      return { a, b: a, close: () => a.close() };
    },
  },
];

describe.each(backends)("node upgrade lock on $name", (backend) => {
  let a: Db;
  let b: Db;
  let opened: Opened | null = null;
  beforeAll(async () => {
    opened = await backend.open();
    ({ a, b } = opened);
  }, 240_000);
  afterAll(async () => {
    await opened?.close();
  });

  it("has one holder however the requests interleave", async () => {
    const tries = Array.from({ length: 20 }, (_, i) => acquireNodeLock((i % 2 ? a : b).prisma, "n1@host", `rollout:r-${i}`, 60_000));
    const won = (await Promise.all(tries)).filter(Boolean);
    expect(won).toHaveLength(1);
    const holder = await nodeLockHolder(a.prisma, "n1@host");
    expect(holder).toMatch(/^rollout:r-\d+$/);
    // Others cannot renew or release it; the holder re-takes and renews its own.
    expect(await renewNodeLock(b.prisma, "n1@host", "step:c-other", 60_000)).toBe(false);
    await releaseNodeLock(b.prisma, "n1@host", "step:c-other");
    expect(await nodeLockHolder(b.prisma, "n1@host")).toBe(holder);
    expect(await acquireNodeLock(b.prisma, "n1@host", holder as string, 60_000)).toBe(true);
    expect(await renewNodeLock(a.prisma, "n1@host", holder as string, 60_000)).toBe(true);
    await releaseNodeLock(a.prisma, "n1@host", holder as string);
    expect(await nodeLockHolder(b.prisma, "n1@host")).toBeNull();
    expect(await acquireNodeLock(b.prisma, "n1@host", "step:c-next", 60_000)).toBe(true);
  });

  it("is taken over once expired, and the old holder cannot renew it then", async () => {
    expect(await acquireNodeLock(a.prisma, "n2@host", "rollout:r-old", 300)).toBe(true);
    expect(await acquireNodeLock(b.prisma, "n2@host", "rollout:r-new", 60_000)).toBe(false);
    await new Promise((r) => setTimeout(r, 400));
    expect(await acquireNodeLock(b.prisma, "n2@host", "rollout:r-new", 60_000)).toBe(true);
    expect(await renewNodeLock(a.prisma, "n2@host", "rollout:r-old", 60_000)).toBe(false);
    expect(await nodeLockHolder(a.prisma, "n2@host")).toBe("rollout:r-new");
  });
});
