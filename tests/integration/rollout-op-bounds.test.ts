/**
 * A rollout operation over the internal route (fleet/rollout-remote.ts)
 * acts for its rollout with no principal: a holder of the instance key (a
 * leaked one) or of a captured call must get no more than the rollout's
 * engine would send next. A real server on a real PostgreSQL; the rollout
 * row is written directly and claimed by an instance that does not exist, so
 * no engine drives it while the calls arrive. No node is connected: a step
 * the bounds accept goes on to the node lookup and fails there (offline),
 * which is how the test tells "refused by the bounds" from "let through".
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INTERNAL_CALL_PATH, MAC_HEADER, signBody } from "../../server/gateway/internal-call";
import { ROLLOUT_OP_PATH } from "../../server/fleet/rollout-remote";
import { loadSecretKey } from "../../server/storage/secret-key";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { startServer, type TestServer } from "../support/server";

const SECRET = crypto.randomBytes(32).toString("base64url");
const key = loadSecretKey({ BEAMDECK_SECRET_KEY: SECRET });
const ROLLOUT = "r-0123456789ab";
const NODE = "victim@host";
const ACCEPTED = "a".repeat(64);
const OTHER_PLAN = "b".repeat(64);
const COMMAND = "c-11111111-2222-4333-8444-555555555555";
const UPGRADE = "u-installed-by-the-rollout";

let pgServer: TestPostgres;
let db: pg.Client;
let server: TestServer;
let instanceId = "";

interface Reply {
  status: number;
  body: { ok: boolean; beamdeckCode?: string | null; message?: string; error?: string };
}

async function call(input: Record<string, unknown>, over: Record<string, unknown> = {}): Promise<Reply> {
  const body = JSON.stringify({
    from: "attacker",
    to: instanceId,
    at: Date.now(),
    nonce: crypto.randomUUID(),
    path: ROLLOUT_OP_PATH,
    type: input.op === "step" ? "mutation" : "query",
    input: { rolloutId: ROLLOUT, node: NODE, ...input },
    principal: null,
    ...over,
  });
  const res = await fetch(`${server.url}${INTERNAL_CALL_PATH}`, {
    method: "POST",
    headers: { "content-type": "application/json", [MAC_HEADER]: signBody(key, body) },
    body,
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: (await res.json()) as Reply["body"] };
}

async function setNodeRow(step: string, commandId: string | null, upgradeId: string | null): Promise<void> {
  await db.query(`UPDATE "RolloutNode" SET step = $1, "commandId" = $2, "upgradeId" = $3, "fromVsn" = '0.1.0' WHERE "rolloutId" = $4`, [step, commandId, upgradeId, ROLLOUT]);
}

function refusedBy(r: Reply, why: RegExp): void {
  expect(r.status).toBe(200);
  expect(r.body.ok).toBe(false);
  expect(r.body.beamdeckCode).toBe("BD_CONFLICT");
  expect(r.body.message).toMatch(why);
}

/** Let through by the bounds: it reached the node lookup (no node is connected here). */
function letThrough(r: Reply): void {
  expect(r.status).toBe(200);
  expect(r.body.ok).toBe(false);
  expect(r.body.beamdeckCode).not.toBe("BD_CONFLICT");
  expect(r.body.message).toContain(NODE);
}

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`opbounds_${Date.now()}`);
  db = new pg.Client({ connectionString: url });
  await db.connect();
  server = await startServer({ databaseUrl: url, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-opb-")), env: { BEAMDECK_SECRET_KEY: SECRET } });
  instanceId = (await db.query<{ id: string }>(`SELECT id FROM "Instance" WHERE "internalUrl" = $1`, [server.url])).rows[0]?.id ?? "";
  const options = { acceptPlans: [ACCEPTED], maxKills: 0, autoRollback: false };
  await db.query(
    `INSERT INTO "Rollout" (id, "group", "toVsn", status, phase, options, "createdBy", "ownerId", "ownerExpiresAt", "createdAt", "updatedAt")
     VALUES ($1, 'g', '0.2.0', 'canary', 'canary', $2, 'user:operator', 'an-instance-elsewhere', now() + interval '1 hour', now(), now())`,
    [ROLLOUT, JSON.stringify(options)],
  );
  await db.query(`INSERT INTO "RolloutNode" ("rolloutId", node, position, "updatedAt") VALUES ($1, $2, 0, now())`, [ROLLOUT, NODE]);
}, 600_000);

afterAll(async () => {
  await server?.stop();
  await db?.end();
  await pgServer?.stop();
});

describe("a rollout operation with a leaked instance key", () => {
  it("was addressed to the real instance (the route answers it)", () => {
    expect(instanceId).toMatch(/\S/);
  });

  it("cannot install a release the rollout is not rolling out", async () => {
    await setNodeRow("installing", COMMAND, null);
    refusedBy(await call({ op: "step", action: "install", commandId: COMMAND, vsn: "6.6.6", gate: { acceptPlan: ACCEPTED } }), /install of 6\.6\.6 is not this rollout's \(0\.2\.0\)/);
    refusedBy(await call({ op: "step", action: "unpack", commandId: COMMAND, vsn: "6.6.6" }), /not waiting on this unpack|is not this rollout's/);
  });

  it("cannot install under a plan digest the rollout did not accept, or with a looser kill bound", async () => {
    await setNodeRow("installing", COMMAND, null);
    refusedBy(await call({ op: "step", action: "install", commandId: COMMAND, vsn: "0.2.0", gate: { acceptPlan: OTHER_PLAN } }), /plan b{64} is not one it accepted/);
    // A looser kill bound is not refused but not used either: the step's gate is the rollout's (tests/unit/rollout-remote.test.ts).
    letThrough(await call({ op: "step", action: "install", commandId: COMMAND, vsn: "0.2.0", gate: { maxKills: 1_000_000 } }));
  });

  it("cannot send a step the node is not waiting on (another command id, another action)", async () => {
    await setNodeRow("installing", COMMAND, null);
    refusedBy(await call({ op: "step", action: "install", commandId: "c-99999999-2222-4333-8444-555555555555", vsn: "0.2.0" }), /not waiting on this install/);
    refusedBy(await call({ op: "step", action: "make_permanent", commandId: COMMAND, upgradeId: UPGRADE }), /not waiting on this make_permanent/);
  });

  it("cannot make permanent or roll back another upgrade than the rollout's, nor roll back without --auto-rollback", async () => {
    await setNodeRow("permanent_sent", COMMAND, UPGRADE);
    refusedBy(await call({ op: "step", action: "make_permanent", commandId: COMMAND, upgradeId: "u-someone-elses" }), /upgrade u-someone-elses is not the one/);
    letThrough(await call({ op: "step", action: "make_permanent", commandId: COMMAND, upgradeId: UPGRADE }));
    await setNodeRow("rolling_back", COMMAND, UPGRADE);
    refusedBy(await call({ op: "step", action: "rollback", commandId: COMMAND, upgradeId: UPGRADE, gate: { acceptPlan: OTHER_PLAN } }), /no --auto-rollback/);
  });

  it("cannot read a plan for another release; the engine's own reads and step go through", async () => {
    refusedBy(await call({ op: "plan", vsn: "6.6.6", purge: {}, prePurge: {} }), /a plan for 6\.6\.6 is not this rollout's/);
    letThrough(await call({ op: "plan", vsn: "0.2.0", purge: {}, prePurge: {} }));
    letThrough(await call({ op: "plan", vsn: "0.1.0", purge: {}, prePurge: {} }));
    await setNodeRow("installing", COMMAND, null);
    letThrough(await call({ op: "step", action: "install", commandId: COMMAND, vsn: "0.2.0", gate: { acceptPlan: ACCEPTED } }));
  });

  it("cannot carry a principal, and a principal-less call reaches nothing but rollout operations", async () => {
    const admin = { kind: "token", tokenId: "x", label: "x", role: "admin", userId: null, username: null };
    const withPrincipal = await call({ op: "releases" }, { principal: admin });
    expect(withPrincipal.status).toBe(400);
    expect(withPrincipal.body.error).toMatch(/carries no principal/);
    const nodesList = await call({}, { path: "nodes.list", type: "query", input: null });
    expect(nodesList.status).toBe(400);
    expect(nodesList.body.error).toMatch(/needs its principal/);
  });
});
