/**
 * Rollouts across instances (issue 16 with issue 15): two real `beamdeck
 * server` instances (A, B) on one real PostgreSQL, three real rel_test nodes
 * of one group split between them (each agent lists both instances, in an
 * order that lands it on the one the test chose). A rollout started through
 * B is driven by whichever instance claims it; the steps of the nodes the
 * other instance holds are sent to that owner and run there; a halt works
 * through either instance; the owner of a node is killed (`kill -9`) during
 * the node's soak, and while its install is in flight (sent, not yet
 * answered): the rollout finishes with every step sent and audited once.
 * Checked against the nodes themselves (release_handler) and the database rows (commands,
 * audit intents and outcomes, node owners), not the servers' own claims.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { INTERNAL_CALL_PATH, MAC_HEADER, signBody } from "../../server/gateway/internal-call";
import { loadSecretKey } from "../../server/storage/secret-key";
import { type BeamNode, stopAll } from "../../tools/beam/nodes";
import { freePort } from "../../tools/beam/tcp";
import { startAgentNode } from "../support/beam-node";
import { auditedOf, commandsOf, drivingServer, holdingServer, releasesOf } from "../support/fleet-rows";
import { waitFor } from "../support/ports";
import { rolloutStatus } from "../support/rollout-status";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { startServer, type TestServer } from "../support/server";

const SECRET = crypto.randomBytes(32).toString("base64url");
let pgServer: TestPostgres;
let db: pg.Client;
let A: TestServer;
let B: TestServer;
let round = 0;
/** What every instance shares: the database, the data directory (the admin's credentials), the secret. */
let shared: { databaseUrl: string; dataDir: string; env: Record<string, string> };
/** The finished rollout of the first test and its node B holds, for the internal route's refusals. */
let finished: { id: string; nodeOnB: string } | null = null;

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`xroll_${Date.now()}`);
  db = new pg.Client({ connectionString: url });
  await db.connect();
  // A 10 s lease: long enough for a loaded machine's heartbeats, short enough for a claim to move.
  shared = { databaseUrl: url, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-xroll-")), env: { BEAMDECK_SECRET_KEY: SECRET, BEAMDECK_LEASE_MS: "10000" } };
  A = await startServer(shared);
  B = await startServer(shared);
}, 600_000);
afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
  for (const s of [A, B]) await s?.stop();
  await db?.end();
  await pgServer?.stop();
});

/** The test server whose instance holds the node now (by the Node row and the advertised URL), or null. */
const holder = (name: string) => holdingServer(db, [A, B], name);

/** The advertised URL of the instance named in the node's row (C is not among A and B). */
async function ownerUrl(name: string): Promise<string | null> {
  const r = await db.query<{ internalUrl: string | null }>(`SELECT i."internalUrl" FROM "Node" n JOIN "Instance" i ON i.id = n."instanceId" WHERE n.name = $1 AND n."connectedAt" IS NOT NULL`, [name]);
  return r.rows[0]?.internalUrl ?? null;
}

/** The holders of several nodes, one query after another (one client). */
async function holders(nodes: BeamNode[]): Promise<(TestServer | null)[]> {
  const out: (TestServer | null)[] = [];
  for (const n of nodes) out.push(await holder(n.name));
  return out;
}

/** The test server driving the rollout now (Rollout.ownerId), or null. */
const driver = (id: string) => drivingServer(db, [A, B], id);

/** Three fresh nodes of rel_test 0.1.0 in a group of their own: a and c on A, b on B (each lists the other instance second). */
async function fleet(): Promise<{ group: string; nodes: BeamNode[] }> {
  round += 1;
  const group = `xfleet${round}_${process.pid}`;
  const nodes: BeamNode[] = [];
  for (const [x, first, second] of [
    ["a", A, B],
    ["b", B, A],
    ["c", A, B],
  ] as const) {
    const env = { BEAMDECK_GROUP: group, BEAMDECK_URL: `${first.agentUrl},${second.agentUrl}`, REL_TEST_PORT: String(await freePort()) };
    const { node } = await startAgentNode(A, { sname: `xr${round}${x}_${process.pid}`, env });
    nodes.push(node);
  }
  const want = [A, B, A];
  await waitFor("the nodes on A, B, A", async () => (await holders(nodes)).every((h, i) => h === want[i]), 60_000, 300);
  return { group, nodes };
}

const commands = (node: string) => commandsOf(db, node);

const audited = (node: string, action: string) => auditedOf(db, node, action);

const status = rolloutStatus;

async function start(server: TestServer, group: string, extra: string[]): Promise<string> {
  const r = await server.cli(["rollout", "start", group, "0.1.1", "--purge", "TestListener=soft", "--yes", ...extra]);
  expect(r.code, r.stderr).toBe(0);
  const id = r.stdout.trim();
  expect(id).toMatch(/^r-[0-9a-f]{12}$/);
  return id;
}

/** Every node on 0.1.1 permanent, each step sent once and audited once (intent and outcome). */
async function upgradedOnce(nodes: BeamNode[]): Promise<void> {
  for (const n of nodes) {
    expect(await releasesOf(n), n.name).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
    expect(await commands(n.name), n.name).toEqual({ unpack: 1, install: 1, make_permanent: 1 });
    expect(await audited(n.name, "upgrade.install"), n.name).toEqual({ intent: 1, ok: 1 });
    expect(await audited(n.name, "upgrade.make_permanent"), n.name).toEqual({ intent: 1, ok: 1 });
  }
}

describe("a rollout over nodes held by two instances", () => {
  it("started through B, it installs every node once, those held by the other instance through their owner", async () => {
    const { group, nodes } = await fleet();
    const id = await start(B, group, ["--soak", "2s", "--canary", "1", "--batch", "2"]);
    const drivenBy = await waitFor("the rollout claimed", () => driver(id), 30_000, 100);
    // Whichever claimed it, some node is held by the other instance: its steps had to be forwarded.
    const remote: string[] = [];
    for (const n of nodes) if ((await holder(n.name)) !== drivenBy) remote.push(n.name);
    expect(remote.length).toBeGreaterThan(0);

    const waited = await B.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 300_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(0);
    const r = await status(A, id);
    expect(r.status).toBe("done");
    expect(r.nodes.map((n) => n.step)).toEqual(["permanent", "permanent", "permanent"]);
    for (const n of r.nodes) expect(n.gate?.soakedMs).toBeGreaterThanOrEqual(2000);
    await upgradedOnce(nodes);
    // The nodes never moved: the owners ran the steps of their own nodes.
    expect((await holders(nodes)).map((s) => s?.url)).toEqual([A.url, B.url, A.url]);
    finished = { id, nodeOnB: nodes[1].name };
  }, 500_000);

  it("the owner runs a rollout's operation only for an active rollout covering the node, and only without a caller's principal", async () => {
    if (!finished) throw new Error("needs the first test's finished rollout");
    const bId = (await db.query<{ id: string }>(`SELECT id FROM "Instance" WHERE "internalUrl" = $1`, [B.url])).rows[0]?.id ?? "";
    const key = loadSecretKey({ BEAMDECK_SECRET_KEY: SECRET });
    const post = async (over: Record<string, unknown>) => {
      const body = JSON.stringify({ from: "test", to: bId, at: Date.now(), nonce: crypto.randomUUID(), path: "rolloutEngine.op", type: "mutation", principal: null, ...over });
      const res = await fetch(`${B.url}${INTERNAL_CALL_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", [MAC_HEADER]: signBody(key, body) },
        body,
        signal: AbortSignal.timeout(30_000),
      });
      return { status: res.status, body: (await res.json()) as { ok?: boolean; beamdeckCode?: string | null; message?: string; error?: string } };
    };
    const step = { op: "step", rolloutId: finished.id, node: finished.nodeOnB, action: "install", vsn: "0.1.1", commandId: `c-${crypto.randomUUID()}` };
    const admin = { kind: "token", tokenId: "x", label: "x", role: "admin", userId: null, username: null };
    const withPrincipal = await post({ input: step, principal: admin });
    expect(withPrincipal).toEqual({ status: 400, body: { error: "a rollout operation carries no principal" } });
    const noPrincipal = await post({ path: "nodes.list", type: "query", input: null });
    expect(noPrincipal).toEqual({ status: 400, body: { error: "a forwarded call needs its principal" } });
    const done = await post({ input: step });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ ok: false, beamdeckCode: "BD_CONFLICT", message: `rollout ${finished.id} is done; its nodes are not touched` });
    const unknown = await post({ input: { ...step, rolloutId: "r-000000000000" } });
    expect(unknown.body).toMatchObject({ ok: false, beamdeckCode: "BD_NOT_FOUND", message: "no rollout r-000000000000" });
    const malformed = await post({ input: { ...step, commandId: "mine" } });
    expect(malformed.body).toMatchObject({ ok: false, beamdeckCode: "BD_BAD_INPUT" });
    expect(malformed.body.message).toMatch(/^bad rollout operation: commandId: /);
    // Nothing was sent to the node by any of these.
    expect(await commands(finished.nodeOnB)).toEqual({ unpack: 1, install: 1, make_permanent: 1 });
  }, 60_000);

  it("a halt through either instance stops it: the nodes after the canary are not touched", async () => {
    const { group, nodes } = await fleet();
    const id = await start(A, group, ["--soak", "60s"]);
    await waitFor("the canary soaking", async () => (await status(B, id)).nodes[0].soakStartedAt !== null, 180_000, 300);
    const drivenBy = await driver(id);
    const other = drivenBy === A ? B : A;
    // Halted through the instance that does not drive it: the driver stops at its next look.
    const halted = await other.cli(["rollout", "halt", id, "--reason", "across instances"]);
    expect(halted.code, halted.stderr).toBe(0);
    const waited = await B.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 60_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(8);
    // Give a driver that missed the halt time to touch another node (it must not).
    await new Promise((r) => setTimeout(r, 3000));
    const r = await status(A, id);
    expect(r.status).toBe("halted");
    expect(r.haltReason).toMatch(/across instances$/);
    expect(r.nodes.map((n) => n.step)).toEqual(["soaking", "unpacked", "unpacked"]);
    expect(await releasesOf(nodes[0])).toBe(`[{"0.1.0",permanent},{"0.1.1",current}]`);
    for (const n of nodes.slice(1)) {
      expect(await releasesOf(n)).toBe(`[{"0.1.0",permanent},{"0.1.1",unpacked}]`);
      expect(await commands(n.name)).toEqual({ unpack: 1 });
    }
    expect(await commands(nodes[0].name)).toEqual({ unpack: 1, install: 1 });
    // Halted is not running anywhere: nobody drives it.
    expect(await driver(id)).toBeNull();
  }, 500_000);

  it("kill -9 of the instance holding a node mid-rollout: its agent moves, the rollout finishes, no step is sent twice", async () => {
    const { group, nodes } = await fleet();
    const id = await start(B, group, ["--soak", "12s", "--canary", "1", "--batch", "2"]);
    const drivenBy = await waitFor("the rollout claimed", () => driver(id), 30_000, 100);
    const victim = drivenBy === A ? B : A;
    const held: string[] = [];
    for (const n of nodes) if ((await holder(n.name)) === victim) held.push(n.name);
    // Killed while one of its nodes soaks (after its install, before make_permanent).
    const soaking = await waitFor(
      "a node of the victim soaking",
      async () => (await status(drivenBy as TestServer, id)).nodes.find((n) => held.includes(n.node) && n.step === "soaking" && n.soakStartedAt !== null) ?? null,
      240_000,
      200,
    );
    await victim.kill();
    for (const name of held) await waitFor(`${name} on the surviving instance`, async () => (await holder(name)) === drivenBy, 30_000, 200);

    const waited = await (drivenBy as TestServer).cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 300_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(0);
    const r = await status(drivenBy as TestServer, id);
    expect(r.status).toBe("done");
    expect(r.nodes.find((n) => n.node === soaking.node)?.step).toBe("permanent");
    await upgradedOnce(nodes);
    await victim.restart();
  }, 600_000);

  it("kill -9 of a node's owner while that node's install is in flight: the step is not sent again, its outcome is recorded once", async () => {
    // C holds a reply to a step 6 s after sending its command (test-only), so the kill lands while the forwarded step is in flight.
    const C = await startServer({ ...shared, env: { ...shared.env, BEAMDECK_TEST_DELAY_MUTATION_REPLY_MS: "6000" } });
    try {
      round += 1;
      const group = `xfleet${round}_${process.pid}`;
      const nodes: BeamNode[] = [];
      for (const [x, first] of [
        ["a", A],
        ["b", C],
        ["c", A],
      ] as const) {
        const urls = first === C ? `${C.agentUrl},${A.agentUrl}` : `${A.agentUrl},${C.agentUrl}`;
        const { node } = await startAgentNode(A, { sname: `xr${round}${x}_${process.pid}`, env: { BEAMDECK_GROUP: group, BEAMDECK_URL: urls, REL_TEST_PORT: String(await freePort()) } });
        nodes.push(node);
      }
      await waitFor("the nodes on A, C, A", async () => (await holders(nodes)).every((h, i) => (i === 1 ? h === null || h === C : h === A)) && (await ownerUrl(nodes[1].name)) === C.url, 60_000, 300);
      const id = await start(A, group, ["--soak", "2s", "--canary", "1", "--batch", "2"]);
      // The moment C has sent b's install (its command row exists), C dies.
      await waitFor("b's install sent", async () => (await commands(nodes[1].name)).install === 1, 240_000, 50);
      await C.kill();
      // Within C's 6 s hold: the forwarded install had not been answered when C died.
      const sent = await db.query<{ createdAt: Date }>(`SELECT "createdAt" FROM "UpgradeCommand" WHERE node = $1 AND action = 'install'`, [nodes[1].name]);
      expect(Date.now() - (sent.rows[0]?.createdAt.getTime() ?? 0)).toBeLessThan(6000);
      await waitFor("b on A", async () => (await holder(nodes[1].name)) === A, 30_000, 200);
      const waited = await A.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 300_000 });
      expect(waited.code, waited.stdout + waited.stderr).toBe(0);
      expect((await status(A, id)).status).toBe("done");
      await upgradedOnce(nodes);
    } finally {
      await C.stop();
    }
  }, 600_000);
});
