/**
 * Instance liveness and node leases (issue 10, item 9).
 *
 * Each server instance has a heartbeat row (`Instance`). The instance
 * holding a node's socket holds its lease (`Node.instanceId`,
 * `Node.leaseExpiresAt`) and renews it with every heartbeat. A lease that
 * was not renewed in time is void: whoever notices (any instance, at start
 * and on every beat) releases it, so the node shows disconnected and
 * `node_down` can fire. Built so that several instances can share one
 * PostgreSQL: an instance only renews its own leases and only releases
 * expired ones.
 */
import type { PrismaClient } from "../../generated/prisma/client";
import type { Env } from "../storage/database-url";
import { DB_NOW, dbNowPlus } from "../storage/db-clock";

export const DEFAULT_LEASE_MS = 30_000;
/** Instance rows silent for this long are deleted (their leases are long void). */
const FORGET_INSTANCE_MS = 7 * 86400_000;
/** Bounded work per beat: more expired leases are released by the next one. */
const MAX_RELEASED = 10_000;

/** `BEAMDECK_LEASE_MS` (floor 1 s): how long a node stays owned without a heartbeat. */
export function leaseMs(env: Env): number {
  const v = Number(env.BEAMDECK_LEASE_MS);
  return Number.isFinite(v) && v > 0 ? Math.max(1000, Math.floor(v)) : DEFAULT_LEASE_MS;
}

/**
 * The instance holding a node under a current lease, when that is not `me`
 * (null: held here, by nobody, or the lease ran out at `now`, a time on the
 * database's clock). The one test of "held elsewhere": tRPC forwarding
 * (routers/node-input.ts), node listings, the rollout's connection check and
 * where its steps run (fleet/rollout-steps.ts) — all through
 * InstanceLeases.ownerElsewhere, which supplies `me` and `now` — and, as a
 * database filter, a revocation's count of sockets (heldElsewhereWhere).
 */
export function ownerElsewhere(row: { instanceId: string | null; leaseExpiresAt: Date | null } | null, me: string, now: number): string | null {
  if (!row?.instanceId || row.instanceId === me) return null;
  return (row.leaseExpiresAt?.getTime() ?? 0) > now ? row.instanceId : null;
}

/**
 * Expiries are compared on the database's clock (storage/db-clock.ts), so
 * instances whose clocks are apart agree on which lease is current: writes
 * and releases compare in SQL; reads of a lease already fetched use this
 * instance's clock corrected by its offset to the database's, measured at
 * every heartbeat.
 */
export class InstanceLeases {
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  /** The database's clock minus this instance's, in ms (as of the last heartbeat). */
  private offsetMs = 0;

  constructor(
    private readonly prisma: PrismaClient,
    readonly instanceId: string,
    readonly leaseMs: number,
    /** Called with the nodes whose leases this instance released. */
    private readonly onReleased: (nodes: string[]) => void,
  ) {}

  /** The database's clock now, as this instance estimates it (ms since the epoch). */
  dbNow(): number {
    return Date.now() + this.offsetMs;
  }

  /** Is a lease ending at `expiresAt` current (on the database's clock)? */
  current(expiresAt: Date | null): boolean {
    return (expiresAt?.getTime() ?? 0) > this.dbNow();
  }

  /** The other instance holding the node under a current lease, or null (see ownerElsewhere). */
  ownerElsewhere(row: { instanceId: string | null; leaseExpiresAt: Date | null } | null): string | null {
    return ownerElsewhere(row, this.instanceId, this.dbNow());
  }

  /** The same test as a filter on node rows, for counting them in the database (routers/tokens.ts). */
  heldElsewhereWhere() {
    return { instanceId: { not: this.instanceId }, leaseExpiresAt: { gt: new Date(this.dbNow()) } };
  }

  /** Is the node row held by another instance under a current lease? */
  heldElsewhere(row: { instanceId: string | null; leaseExpiresAt: Date | null }): boolean {
    return this.ownerElsewhere(row) !== null;
  }

  /** `internalUrl`: where other instances forward calls about the nodes this one holds (gateway/forward-call.ts). */
  async start(internalUrl: string | null = null): Promise<void> {
    await this.heartbeat(internalUrl, true);
    await this.releaseExpired();
    this.timer = setInterval(() => void this.beat(), Math.max(250, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** Write the heartbeat row on the database's clock, and measure the offset to it from the same statement. */
  private async heartbeat(internalUrl: string | null, setUrl: boolean): Promise<void> {
    const sent = Date.now();
    const rows = await this.prisma.$queryRawUnsafe<{ at: Date }[]>(
      `INSERT INTO "Instance" ("id", "internalUrl", "startedAt", "heartbeatAt") VALUES ($1, $2, ${DB_NOW}, ${DB_NOW})
       ON CONFLICT ("id") DO UPDATE SET "heartbeatAt" = ${DB_NOW}${setUrl ? `, "internalUrl" = $2` : ""}
       RETURNING "heartbeatAt" AS at`,
      this.instanceId,
      internalUrl,
    );
    const at = rows[0]?.at;
    // The statement ran about halfway through the round trip.
    if (at) this.offsetMs = at.getTime() - Math.round((sent + Date.now()) / 2);
  }

  /** Renew this instance's heartbeat and leases, then release expired ones. One beat at a time. */
  beat(): Promise<void> {
    this.beating ??= (async () => {
      try {
        await this.heartbeat(null, false);
        await this.prisma.$executeRawUnsafe(
          `UPDATE "Node" SET "leaseExpiresAt" = ${dbNowPlus("$2")}, "lastSeenAt" = ${DB_NOW} WHERE "instanceId" = $1 AND "connectedAt" IS NOT NULL`,
          this.instanceId,
          this.leaseMs,
        );
        await this.releaseExpired();
        await this.prisma.$executeRawUnsafe(`DELETE FROM "Instance" WHERE "heartbeatAt" < ${DB_NOW} - ($1::int * interval '1 millisecond')`, FORGET_INSTANCE_MS);
      } catch (e) {
        console.error(`[beamdeck] instance heartbeat failed: ${(e as Error).message}`);
      } finally {
        this.beating = null;
      }
    })();
    return this.beating;
  }

  /**
   * Release leases nobody renewed (a killed instance's), on the database's
   * clock; leases from before leases existed count as expired. One statement:
   * a node another instance took meanwhile no longer matches.
   */
  async releaseExpired(): Promise<string[]> {
    const rows = await this.prisma.$queryRawUnsafe<{ name: string }[]>(
      `UPDATE "Node" SET "instanceId" = NULL, "connectedAt" = NULL, "leaseExpiresAt" = NULL
       WHERE "name" IN (SELECT "name" FROM "Node" WHERE "instanceId" IS NOT NULL AND "instanceId" <> $1
                          AND ("leaseExpiresAt" IS NULL OR "leaseExpiresAt" < ${DB_NOW}) LIMIT ${MAX_RELEASED})
         AND "instanceId" IS NOT NULL AND "instanceId" <> $1 AND ("leaseExpiresAt" IS NULL OR "leaseExpiresAt" < ${DB_NOW})
       RETURNING "name"`,
      this.instanceId,
    );
    const released = rows.map((r) => r.name);
    if (released.length > 0) {
      console.warn(`[beamdeck] released ${released.length} node(s) held by server instances that stopped: ${released.slice(0, 10).join(", ")}${released.length > 10 ? ", …" : ""}`);
      this.onReleased(released);
    }
    return released;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    await this.prisma.instance.deleteMany({ where: { id: this.instanceId } }).catch(() => {});
  }
}
