/**
 * What several instances on one PostgreSQL recorded, read straight from the
 * database by the multi-instance rollout tests: who holds a node, who drives
 * a rollout, what was sent and audited (every instance's rows).
 */
import type pg from "pg";
import type { BeamNode } from "../../tools/beam/nodes";
import type { TestServer } from "./server";

/** The test server whose instance holds the node now (by the Node row, its lease and the advertised URL), or null. */
export async function holdingServer(db: pg.Client, servers: TestServer[], name: string): Promise<TestServer | null> {
  const r = await db.query<{ internalUrl: string | null }>(
    `SELECT i."internalUrl" FROM "Node" n JOIN "Instance" i ON i.id = n."instanceId" WHERE n.name = $1 AND n."connectedAt" IS NOT NULL AND n."leaseExpiresAt" > now()`,
    [name],
  );
  const u = r.rows[0]?.internalUrl;
  return servers.find((s) => s.url === u) ?? null;
}

/** The test server driving the rollout now (Rollout.ownerId), or null. */
export async function drivingServer(db: pg.Client, servers: TestServer[], id: string): Promise<TestServer | null> {
  const r = await db.query<{ internalUrl: string | null }>(`SELECT i."internalUrl" FROM "Rollout" r JOIN "Instance" i ON i.id = r."ownerId" WHERE r.id = $1`, [id]);
  const u = r.rows[0]?.internalUrl;
  return servers.find((s) => s.url === u) ?? null;
}

/** Commands the servers sent to a node, by action. */
export async function commandsOf(db: pg.Client, node: string): Promise<Record<string, number>> {
  const r = await db.query<{ action: string; n: string }>(`SELECT action, count(*) AS n FROM "UpgradeCommand" WHERE node = $1 GROUP BY action`, [node]);
  return Object.fromEntries(r.rows.map((x) => [x.action, Number(x.n)]));
}

/** Audit entries of one step on a node: intents (no outcome) and outcomes by kind. */
export async function auditedOf(db: pg.Client, node: string, action: string): Promise<Record<string, number>> {
  const r = await db.query<{ outcome: string | null; n: string }>(`SELECT outcome, count(*) AS n FROM "AuditEntry" WHERE node = $1 AND action = $2 GROUP BY outcome`, [node, action]);
  return Object.fromEntries(r.rows.map((x) => [x.outcome ?? "intent", Number(x.n)]));
}

/** The node's releases and their states, sorted (release_handler's own view). */
export const releasesOf = (n: BeamNode) => n.rpc(`lists:sort([{V, S} || {_, V, _, S} <- release_handler:which_releases()])`);
