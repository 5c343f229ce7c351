/**
 * Node leases on the database's clock, and the agent handshake's database
 * round trips, on a real PostgreSQL (issue 16).
 *
 * Two instances' lease keepers (server/agents/leases.ts) share the database
 * as two servers would. An instance whose own clock is far ahead or behind
 * is made by faking this process's `Date` only (the seam: no server has a
 * clock setting); the database's clock is the real one. With comparisons on
 * the instance's clock, the fast instance would release a live node's lease
 * and the slow one would keep a dead instance's lease for ten minutes.
 *
 * The handshake (checkAgentToken at the upgrade, then the registry's hello)
 * runs against a Prisma client that counts every operation sent, raw SQL
 * included: a reconnecting agent costs two round trips, not five.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { PrismaClient } from "../../generated/prisma/client";
import { InstanceLeases } from "../../server/agents/leases";
import type { HelloFrame } from "../../server/agents/protocol";
import { AgentRegistry } from "../../server/agents/registry";
import type { AgentSession } from "../../server/agents/session";
import { checkAgentToken, createAgentToken } from "../../server/auth/agent-tokens";
import { EventStore } from "../../server/events/store";
import { LocalHub } from "../../server/live/hub";
import { openDatabase } from "../../server/storage/db";
import { waitFor } from "../support/ports";
import { startPostgres, type TestPostgres } from "../support/postgres";

const TEN_MINUTES = 10 * 60_000;
let pgServer: TestPostgres;
let db: Awaited<ReturnType<typeof openDatabase>>;
let prisma: PrismaClient;

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`leases_${Date.now()}`);
  db = await openDatabase("test", { DATABASE_URL: url, BEAMDECK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-leases-")) });
  prisma = db.prisma;
}, 240_000);

afterAll(async () => {
  await db?.close();
  await pgServer?.stop();
});

afterEach(() => {
  vi.useRealTimers();
});

/** This process's clock moved by `ms` (Date only: timers and the database keep real time). */
function skewClock(ms: number): void {
  vi.useFakeTimers({ toFake: ["Date"], shouldAdvanceTime: true });
  vi.setSystemTime(Date.now() + ms);
}

async function leaseRow(name: string) {
  return prisma.node.findUnique({ where: { name }, select: { instanceId: true, connectedAt: true, leaseExpiresAt: true } });
}

/** A node held by `instanceId` whose lease ends `inMs` from now on the database's clock. */
async function heldNode(name: string, instanceId: string, inMs: number): Promise<void> {
  await prisma.$executeRawUnsafe(
    `INSERT INTO "Node" ("name", "connectedAt", "instanceId", "leaseExpiresAt") VALUES ($1, now(), $2, ((now() AT TIME ZONE 'UTC') + ($3::int * interval '1 millisecond'))::timestamp(3))
     ON CONFLICT ("name") DO UPDATE SET "connectedAt" = now(), "instanceId" = $2, "leaseExpiresAt" = EXCLUDED."leaseExpiresAt"`,
    name,
    instanceId,
    inMs,
  );
}

describe("node leases compare expiries on the database's clock", () => {
  it("an instance whose clock is 10 min ahead does not release a live lease, and sees it as held", async () => {
    await heldNode("live@host", "instance-a", 30_000);
    skewClock(TEN_MINUTES);
    const released: string[] = [];
    const fast = new InstanceLeases(prisma, "instance-fast", 30_000, (n) => released.push(...n));
    await fast.start(null);
    try {
      expect(await fast.releaseExpired()).toEqual([]);
      expect(released).toEqual([]);
      const row = await leaseRow("live@host");
      expect(row?.instanceId).toBe("instance-a");
      // Its reading of a fetched lease is corrected by the offset it measured: held by A, current.
      expect(row && fast.heldElsewhere(row)).toBe(true);
      // The same rule as a database filter (agentRevoke counts sockets elsewhere by it).
      expect(await prisma.node.count({ where: { name: "live@host", ...fast.heldElsewhereWhere() } })).toBe(1);
      // Its own clock alone would say the lease ran out 9.5 min ago.
      expect((row?.leaseExpiresAt?.getTime() ?? 0) < Date.now()).toBe(true);
    } finally {
      await fast.stop();
    }
  });

  it("an instance whose clock is 10 min behind releases a lease that ran out, and does not see it as held", async () => {
    await heldNode("dead@host", "instance-dead", -1000);
    skewClock(-TEN_MINUTES);
    const released: string[] = [];
    const slow = new InstanceLeases(prisma, "instance-slow", 30_000, (n) => released.push(...n));
    const before = await leaseRow("dead@host");
    try {
      // Its own clock alone would say the lease has 9 min to go.
      expect((before?.leaseExpiresAt?.getTime() ?? 0) > Date.now()).toBe(true);
      await slow.start(null);
      expect(before && slow.heldElsewhere(before)).toBe(false);
      expect(released).toEqual(["dead@host"]);
      expect(await leaseRow("dead@host")).toEqual({ instanceId: null, connectedAt: null, leaseExpiresAt: null });
    } finally {
      await slow.stop();
    }
  });

  it("a heartbeat renews the instance's own leases on the database's clock, whatever its own clock says", async () => {
    const behind = new InstanceLeases(prisma, "instance-behind", 30_000, () => {});
    await heldNode("renewed@host", "instance-behind", 1000);
    skewClock(-TEN_MINUTES);
    try {
      await behind.beat();
      const dbNow = (await prisma.$queryRawUnsafe<{ now: Date }[]>(`SELECT (now() AT TIME ZONE 'UTC')::timestamp(3) AS now`))[0]?.now.getTime() ?? 0;
      const expires = (await leaseRow("renewed@host"))?.leaseExpiresAt?.getTime() ?? 0;
      // 30 s past the database's now (less the moments between the two statements), not 30 s past a clock 10 min slow.
      expect(expires - dbNow).toBeGreaterThan(25_000);
      expect(expires - dbNow).toBeLessThanOrEqual(30_000);
      // The heartbeat row is on the database's clock too: the other instances judge it by that.
      const beat = await prisma.instance.findUnique({ where: { id: "instance-behind" } });
      expect(Math.abs((beat?.heartbeatAt.getTime() ?? 0) - dbNow)).toBeLessThan(5000);
    } finally {
      await behind.stop();
    }
  });
});

/** A Prisma client that counts the operations it sends (model calls and raw SQL alike). */
function counting(client: PrismaClient): { prisma: PrismaClient; sent: string[] } {
  const sent: string[] = [];
  const extended = client.$extends({
    query: {
      async $allOperations({ model, operation, args, query }) {
        sent.push(`${model ?? "raw"}.${operation}`);
        return query(args);
      },
    },
  });
  return { prisma: extended as unknown as PrismaClient, sent };
}

function hello(node: string, bootId: string): HelloFrame {
  return {
    type: "hello",
    protocol: 1,
    node,
    bootId,
    agentVersion: "0.1.0-test",
    otpRelease: "25",
    ertsVersion: "13.1.5",
    processCount: 10,
    applications: [{ name: "kernel", vsn: "8.5.3" }],
    releases: [{ name: "app", vsn: "1.0.0", status: "permanent" }],
    capabilities: [],
    lastEventSeq: 0,
  };
}

describe("the agent handshake's database round trips", () => {
  it("a reconnecting agent costs two: the token with the name's binding, then one statement for the node row", async () => {
    const { prisma: counted, sent } = counting(prisma);
    const hub = new LocalHub();
    const leases = new InstanceLeases(counted, "instance-h", 30_000, () => {});
    const registry = new AgentRegistry(counted, hub, "instance-h", new EventStore(counted, hub), leases);
    const { token } = await createAgentToken(prisma, { label: "handshake" });
    const node = "handshake@host";
    const session = (epoch: number) => ({ node, tokenId: "", fleetGroup: null, epoch, isOpen: true, close() {} }) as unknown as AgentSession;
    try {
      // The first use also binds the token to the name and the name to the token (one statement each), and notes the use.
      const first = await checkAgentToken(counted, token, node);
      expect(first.ok).toBe(true);
      const s1 = session(0);
      expect(await registry.onHello(s1, hello(node, "boot-0001"))).toMatchObject({ ok: true, lastEventSeq: 0 });
      expect(s1.epoch).toBe(1);
      await waitFor("the last use written", async () => sent.includes("AgentToken.update"), 5000, 20);
      expect(sent.sort()).toEqual(["AgentToken.update", "AgentToken.updateMany", "raw.$queryRawUnsafe", "raw.$queryRawUnsafe", "raw.$queryRawUnsafe"]);
      await prisma.event.create({ data: { node, bootId: "boot-0001", seq: 7, kind: "supervisor_report", at: new Date(), data: {} } });

      // The agent comes back (same boot): counted from here.
      sent.length = 0;
      const again = await checkAgentToken(counted, token, node);
      expect(again.ok).toBe(true);
      const s2 = session(0);
      const welcome = await registry.onHello(s2, { ...hello(node, "boot-0001"), lastEventSeq: 7 });
      expect(welcome).toMatchObject({ ok: true, lastEventSeq: 7 });
      expect(s2.epoch).toBe(2);
      expect(sent).toEqual(["raw.$queryRawUnsafe", "raw.$queryRawUnsafe"]);
      // The row says this instance holds it under a lease on the database's clock.
      const row = await leaseRow(node);
      expect(row?.instanceId).toBe("instance-h");
      expect(row && leases.current(row.leaseExpiresAt)).toBe(true);
    } finally {
      await registry.shutdown();
    }
  });
});
