/**
 * Failover keeps an upgrade's expectations and a rollout's driver (issues
 * 15 and 16): two real `beamdeck server` instances (A, B) on one real
 * PostgreSQL, real rel_test nodes.
 * - A node held by A whose make_permanent kills the processes its plan
 *   predicted: A is killed (`kill -9`) once the step has reached the node's
 *   release_handler (held there, so the deaths come after), the agent moves to B,
 *   which receives the deaths: recorded as expected, no alert, the
 *   prediction against the deaths recorded once.
 * - The instance driving a rollout is killed during a soak: the other one
 *   takes the rollout over when the claim runs out (BEAMDECK_LEASE_MS) and
 *   finishes it, each step sent once; and an unpredicted kill made while no
 *   instance drove it still fails the soak's gate.
 * Facts come from the nodes (release_handler, processes) and the database
 * rows, not the servers' own claims.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type BeamNode, stopAll } from "../../tools/beam/nodes";
import { freePort } from "../../tools/beam/tcp";
import { startAgentNode } from "../support/beam-node";
import { auditedOf, commandsOf, drivingServer, holdingServer, releasesOf } from "../support/fleet-rows";
import { waitFor } from "../support/ports";
import { startPostgres, type TestPostgres } from "../support/postgres";
import { type RolloutNodeJson, rolloutStatus } from "../support/rollout-status";
import { startServer, type TestServer } from "../support/server";

const SUP = "'Elixir.RelTest.Supervisor'";
const LEASE_MS = 8000;
const SECRET = crypto.randomBytes(32).toString("base64url");
let pgServer: TestPostgres;
let db: pg.Client;
let A: TestServer;
let B: TestServer;
let round = 0;

beforeAll(async () => {
  pgServer = await startPostgres();
  const url = await pgServer.createDatabase(`xfail_${Date.now()}`);
  db = new pg.Client({ connectionString: url });
  await db.connect();
  // A short lease: a dead driver's claim on a rollout runs out within seconds.
  const shared = { databaseUrl: url, dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-xfail-")), env: { BEAMDECK_SECRET_KEY: SECRET, BEAMDECK_LEASE_MS: String(LEASE_MS) } };
  A = await startServer(shared);
  B = await startServer(shared);
}, 600_000);
afterEach(async () => {
  await stopAll();
  // A test kills one instance: bring it back for the next.
  for (const s of [A, B]) if (!(await answers(s))) await s.restart();
});
afterAll(async () => {
  await stopAll();
  for (const s of [A, B]) await s?.stop();
  await db?.end();
  await pgServer?.stop();
});

async function answers(s: TestServer): Promise<boolean> {
  return fetch(`${s.url}/healthz`, { signal: AbortSignal.timeout(2000) }).then(
    (r) => r.ok,
    () => false,
  );
}

/** The test server whose instance holds the node now (by the Node row and the advertised URL), or null. */
const holder = (name: string) => holdingServer(db, [A, B], name);

/** The test server driving the rollout now (Rollout.ownerId), or null. */
const driver = (id: string) => drivingServer(db, [A, B], id);

/** A fresh rel_test 0.1.0 node whose agent lists `first` then `second` (so it lands on `first`). */
async function nodeOn(first: TestServer, second: TestServer, sname: string, group?: string): Promise<BeamNode> {
  const env = { BEAMDECK_URL: `${first.agentUrl},${second.agentUrl}`, REL_TEST_PORT: String(await freePort()), ...(group ? { BEAMDECK_GROUP: group } : {}) };
  const { node } = await startAgentNode(A, { sname: `${sname}_${process.pid}`, env });
  await waitFor(`${node.name} on ${first.url}`, async () => (await holder(node.name)) === first, 60_000, 300);
  return node;
}

const acceptor = (n: BeamNode) => n.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children(${SUP})], P`);
const alive = async (n: BeamNode, pid: string) => (await n.rpc(`is_process_alive(list_to_pid("${pid}"))`)) === "true";

const commands = (node: string) => commandsOf(db, node);

const audited = (node: string, action: string) => auditedOf(db, node, action);

const status = rolloutStatus;

describe("a failover in the middle of an upgrade step keeps its expected kills", () => {
  it("the owner killed right after make_permanent reached the node: the new owner records the predicted deaths as expected, pages nobody, records the comparison once", async () => {
    const node = await nodeOn(A, B, "xfx");
    // Every step goes through B; A, the owner, runs it (forwarded).
    const unpack = await B.cli(["upgrade", "unpack", node.name, "0.1.1"]);
    expect(unpack.code, unpack.stderr).toBe(0);
    const plan = async () => JSON.parse((await B.cli(["upgrade", "plan", node.name, "0.1.1", "--json"])).stdout) as { step: string; digest: string; killed: { make_permanent: string[] } };
    const installPlan = await plan();
    const install = await B.cli(["upgrade", "install", node.name, "0.1.1", "--accept-plan", installPlan.digest, "--yes"]);
    expect(install.code, install.stderr).toBe(0);
    const acc = await acceptor(node);
    const permPlan = await plan();
    // The default appup kills the acceptor (on old code) at make_permanent, and the plan says so.
    expect(permPlan.step).toBe("make_permanent");
    expect(permPlan.killed.make_permanent).toEqual([acc]);

    // release_handler stops at the make_permanent request (a sys debug fun, run inside it before it handles a message) until the test lifts it, so the deaths come after A is gone.
    await node.rpc(
      `sys:install(release_handler, {fun(_, {in, {'$gen_call', _, {make_permanent, _}}}, _) -> persistent_term:put(bd_rh_reached, true), receive bd_lift -> done end; (S, _, _) -> S end, go})`,
    );
    const perm = B.cli(["upgrade", "permanent", node.name, "0.1.1", "--accept-plan", permPlan.digest, "--yes"], {}, { timeoutMs: 120_000 });
    await waitFor("make_permanent reaching release_handler", async () => (await node.rpc(`persistent_term:get(bd_rh_reached, false)`)) === "true", 60_000, 50);
    expect(await commands(node.name)).toEqual({ unpack: 1, install: 1, make_permanent: 1 });
    await A.kill();
    await node.rpc(`release_handler ! bd_lift, ok`);
    await waitFor(`${node.name} on B`, async () => (await holder(node.name)) === B, 30_000, 200);

    const done = await perm;
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(await alive(node, acc)).toBe(false);
    expect(await releasesOf(node)).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
    // The acceptor's death, stored by B, is the upgrade's and expected.
    const up = (
      await db.query<{ id: string; actualKills: { make_permanent?: { comparison: { predictedAndDied: string[]; diedUnpredicted: string[] } } } }>(
        `SELECT id, "actualKills" FROM "Upgrade" WHERE node = $1`,
        [node.name],
      )
    ).rows;
    expect(up).toHaveLength(1);
    const deathOf = async () =>
      (
        await db.query<{ expected: boolean; upgradeId: string | null }>(`SELECT expected, "upgradeId" FROM "Event" WHERE node = $1 AND context = 'child_terminated' AND "offenderPid" = $2`, [
          node.name,
          acc,
        ])
      ).rows;
    await waitFor("the acceptor's child_terminated stored", async () => (await deathOf()).length > 0, 30_000, 200);
    // Give the classification and a late raise time to land.
    await new Promise((r) => setTimeout(r, 2000));
    expect(await deathOf()).toEqual([{ expected: true, upgradeId: up[0].id }]);
    const alerts = await db.query<{ kind: string; title: string }>(`SELECT kind, title FROM "Alert" WHERE node = $1`, [node.name]);
    expect(alerts.rows.filter((a) => a.kind === "child_terminated")).toEqual([]);
    // Prediction against deaths, recorded once: one outcome, one comparison.
    expect(up[0].actualKills.make_permanent?.comparison).toEqual({ predictedAndDied: [acc], predictedButAlive: [], diedUnpredicted: [] });
    expect(await commands(node.name)).toEqual({ unpack: 1, install: 1, make_permanent: 1 });
    expect(await audited(node.name, "upgrade.make_permanent")).toEqual({ intent: 1, ok: 1 });
  }, 400_000);
});

/** Three fresh nodes of rel_test 0.1.0 in a group of their own: a and c on A, b on B. */
async function fleet(): Promise<{ group: string; nodes: BeamNode[] }> {
  round += 1;
  const group = `xfail${round}_${process.pid}`;
  const nodes: BeamNode[] = [];
  for (const [x, first, second] of [
    ["a", A, B],
    ["b", B, A],
    ["c", A, B],
  ] as const)
    nodes.push(await nodeOn(first, second, `xd${round}${x}`, group));
  return { group, nodes };
}

async function start(server: TestServer, group: string, extra: string[]): Promise<string> {
  const r = await server.cli(["rollout", "start", group, "0.1.1", "--purge", "TestListener=soft", "--yes", ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

/**
 * Start a rollout through B, wait for a node early in its soak, and kill
 * (`kill -9`) the instance driving it. Returns the survivor and when.
 */
async function killDriverMidSoak(group: string, soak: string): Promise<{ id: string; survivor: TestServer; soaking: RolloutNodeJson; killedAt: number }> {
  const id = await start(B, group, ["--soak", soak, "--canary", "1", "--batch", "2"]);
  const drivenBy = await waitFor("the rollout claimed", () => driver(id), 30_000, 100);
  const survivor = drivenBy === A ? B : A;
  const soaking = await waitFor(
    "a node early in its soak",
    async () => (await status(survivor, id)).nodes.find((n) => n.step === "soaking" && n.soakStartedAt !== null && Date.now() - Date.parse(n.soakStartedAt) < 4000) ?? null,
    240_000,
    200,
  );
  await drivenBy.kill();
  return { id, survivor, soaking, killedAt: Date.now() };
}

describe("kill -9 of the instance driving a rollout", () => {
  it("the other instance takes the rollout over when its claim runs out and finishes it: no soak cut short, no step sent twice", async () => {
    const { group, nodes } = await fleet();
    const { id, survivor, soaking, killedAt } = await killDriverMidSoak(group, "10s");
    // The claim moves only once it has run out on the database's clock: not at once, and within a lease and a few ticks.
    await waitFor("the survivor driving", async () => (await driver(id)) === survivor, LEASE_MS + 20_000, 100);
    const tookOverMs = Date.now() - killedAt;
    console.log(`[xfail] rollout taken over ${tookOverMs} ms after kill -9 of its driver (lease ${LEASE_MS} ms)`);
    expect(tookOverMs).toBeGreaterThan(LEASE_MS / 4);

    const waited = await survivor.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 300_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(0);
    const r = await status(survivor, id);
    expect(r.status).toBe("done");
    // The interrupted soak started over under the new driver and ran in full, as did every other.
    const resumed = r.nodes.find((n) => n.node === soaking.node) as RolloutNodeJson;
    expect(Date.parse(resumed.soakStartedAt as string)).toBeGreaterThan(killedAt);
    for (const n of r.nodes) expect(n.gate?.soakedMs, n.node).toBeGreaterThanOrEqual(10_000);
    for (const n of nodes) {
      expect(await releasesOf(n), n.name).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
      expect(await commands(n.name), n.name).toEqual({ unpack: 1, install: 1, make_permanent: 1 });
      expect(await audited(n.name, "upgrade.install"), n.name).toEqual({ intent: 1, ok: 1 });
      expect(await audited(n.name, "upgrade.make_permanent"), n.name).toEqual({ intent: 1, ok: 1 });
    }
  }, 600_000);

  it("an unpredicted kill made while no instance drives the rollout fails the soak's gate under the new driver", async () => {
    const { group, nodes } = await fleet();
    const { id, survivor, soaking } = await killDriverMidSoak(group, "30s");
    // No instance drives the rollout now: the soaking node loses a supervised child nobody predicted.
    const victim = nodes.find((n) => n.name === soaking.node) as BeamNode;
    const acc = await acceptor(victim);
    await victim.rpc(`exit(list_to_pid("${acc}"), kill), ok`);
    await waitFor(
      "the kill stored",
      async () => ((await db.query(`SELECT 1 FROM "Event" WHERE node = $1 AND context = 'child_terminated' AND "offenderPid" = $2`, [victim.name, acc])).rowCount ?? 0) > 0,
      30_000,
      200,
    );

    const waited = await survivor.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 300_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(8);
    const r = await status(survivor, id);
    expect(r.status).toBe("halted");
    expect(r.haltReason).toMatch(/health gate: 1 crash or supervisor report\(s\) the plan did not predict/);
    expect(r.nodes.find((n) => n.node === victim.name)?.step).toBe("gate_failed");
    // Nothing after the failed gate: the soaking node was not made permanent, no other node went further.
    expect(await commands(victim.name)).toEqual({ unpack: 1, install: 1 });
    expect(await releasesOf(victim)).toBe(`[{"0.1.0",permanent},{"0.1.1",current}]`);
    for (const n of nodes.filter((x) => x !== victim)) expect((await commands(n.name)).make_permanent, n.name).toBeUndefined();
  }, 600_000);
});
