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

export const DEFAULT_LEASE_MS = 30_000;
/** Instance rows silent for this long are deleted (their leases are long void). */
const FORGET_INSTANCE_MS = 7 * 86400_000;

/** `BEAMDECK_LEASE_MS` (floor 1 s): how long a node stays owned without a heartbeat. */
export function leaseMs(env: Env): number {
  const v = Number(env.BEAMDECK_LEASE_MS);
  return Number.isFinite(v) && v > 0 ? Math.max(1000, Math.floor(v)) : DEFAULT_LEASE_MS;
}

/**
 * The instance holding a node under a current lease, when that is not `me`
 * (null: held here, by nobody, or the lease ran out). The one test of "held
 * elsewhere": tRPC forwarding (routers/node-input.ts), the rollout's
 * connection check and where its steps run (fleet/rollout-steps.ts).
 */
export function ownerElsewhere(row: { instanceId: string | null; leaseExpiresAt: Date | null } | null, me: string, now = Date.now()): string | null {
  if (!row?.instanceId || row.instanceId === me) return null;
  return (row.leaseExpiresAt?.getTime() ?? 0) > now ? row.instanceId : null;
}

export class InstanceLeases {
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;

  constructor(
    private readonly prisma: PrismaClient,
    readonly instanceId: string,
    readonly leaseMs: number,
    /** Called with the nodes whose leases this instance released. */
    private readonly onReleased: (nodes: string[]) => void,
  ) {}

  /** The lease fields for a node this instance takes now. */
  acquire(now = new Date()) {
    return { instanceId: this.instanceId, leaseExpiresAt: new Date(now.getTime() + this.leaseMs) };
  }

  /** `internalUrl`: where other instances forward calls about the nodes this one holds (gateway/forward-call.ts). */
  async start(internalUrl: string | null = null): Promise<void> {
    const now = new Date();
    await this.prisma.instance.upsert({ where: { id: this.instanceId }, create: { id: this.instanceId, internalUrl }, update: { heartbeatAt: now, internalUrl } });
    await this.releaseExpired();
    this.timer = setInterval(() => void this.beat(), Math.max(250, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** Renew this instance's heartbeat and leases, then release expired ones. One beat at a time. */
  beat(): Promise<void> {
    this.beating ??= (async () => {
      try {
        const now = new Date();
        await this.prisma.instance.upsert({ where: { id: this.instanceId }, create: { id: this.instanceId }, update: { heartbeatAt: now } });
        await this.prisma.node.updateMany({
          where: { instanceId: this.instanceId, connectedAt: { not: null } },
          data: { leaseExpiresAt: new Date(now.getTime() + this.leaseMs), lastSeenAt: now },
        });
        await this.releaseExpired();
        await this.prisma.instance.deleteMany({ where: { heartbeatAt: { lt: new Date(now.getTime() - FORGET_INSTANCE_MS) } } });
      } catch (e) {
        console.error(`[beamdeck] instance heartbeat failed: ${(e as Error).message}`);
      } finally {
        this.beating = null;
      }
    })();
    return this.beating;
  }

  /** Release leases nobody renewed (a killed instance's); leases from before leases existed count as expired. */
  async releaseExpired(): Promise<string[]> {
    const now = new Date();
    const stale = await this.prisma.node.findMany({
      where: { instanceId: { not: null }, NOT: { instanceId: this.instanceId }, OR: [{ leaseExpiresAt: null }, { leaseExpiresAt: { lt: now } }] },
      select: { name: true, instanceId: true },
      take: 10_000,
    });
    const released: string[] = [];
    for (const n of stale) {
      // Only if still held by the same dead instance (another may have taken it meanwhile).
      const { count } = await this.prisma.node.updateMany({
        where: { name: n.name, instanceId: n.instanceId, OR: [{ leaseExpiresAt: null }, { leaseExpiresAt: { lt: now } }] },
        data: { instanceId: null, connectedAt: null, leaseExpiresAt: null },
      });
      if (count > 0) released.push(n.name);
    }
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
