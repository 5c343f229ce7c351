/**
 * Rolling upgrades (issue 15) on real nodes: three nodes of the forum's
 * release in one group, upgraded through `beamdeck rollout start` — unpack
 * everywhere, the canary, then a batch — with the soak and the health gate.
 * Every claim is checked against the nodes themselves (release_handler,
 * supervisor:which_children, process liveness) and against the server's
 * own records (upgrade history: one command per step and node).
 */
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { freePort } from "../../tools/beam/tcp";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { type RolloutNodeJson, rolloutStatus } from "../support/rollout-status";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

const SUP = "'Elixir.RelTest.Supervisor'";
let server: TestServer;
let round = 0;

beforeAll(async () => {
  // Short leases: a killed server's claim on a rollout expires in seconds.
  server = await startServer({ env: { BEAMDECK_LEASE_MS: "3000" } });
}, 300_000);
afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

/** Three fresh nodes of rel_test 0.1.0 in a group of their own. */
async function fleet(): Promise<{ group: string; nodes: BeamNode[] }> {
  round += 1;
  const group = `fleet${round}_${process.pid}`;
  const nodes: BeamNode[] = [];
  // One after the other: the release build is cached and shared.
  for (const x of ["a", "b", "c"]) {
    const { node } = await startAgentNode(server, { sname: `ro${round}${x}_${process.pid}`, env: { BEAMDECK_GROUP: group, REL_TEST_PORT: String(await freePort()) } });
    nodes.push(node);
  }
  await Promise.all(nodes.map((n) => waitConnected(server, n.name)));
  return { group, nodes: nodes.sort((a, b) => a.name.localeCompare(b.name)) };
}

const releasesOf = (n: BeamNode) => n.rpc(`lists:sort([{V, S} || {_, V, _, S} <- release_handler:which_releases()])`);
const acceptor = (n: BeamNode) => n.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children(${SUP})], P`);
const alive = async (n: BeamNode, pid: string) => (await n.rpc(`is_process_alive(list_to_pid("${pid}"))`)) === "true";
const kill = async (n: BeamNode, pid: string) => n.rpc(`exit(list_to_pid("${pid}"), kill), ok`);

const status = (id: string) => rolloutStatus(server, id);
async function start(group: string, extra: string[]): Promise<string> {
  const r = await server.cli(["rollout", "start", group, "0.1.1", "--purge", "TestListener=soft", "--yes", ...extra]);
  expect(r.code, r.stderr).toBe(0);
  const id = r.stdout.trim();
  expect(id).toMatch(/^r-[0-9a-f]{12}$/);
  return id;
}
/** Steps the server sent to a node, by action (its upgrade history and unpack commands). */
async function commandsOf(node: string): Promise<Record<string, number>> {
  const api = httpClient(server.url, { token: server.apiToken });
  const h = await api.upgrades.history.query({ node, limit: 100 });
  const out: Record<string, number> = {};
  for (const u of h) for (const c of u.commands) out[c.action] = (out[c.action] ?? 0) + 1;
  return out;
}

describe("rollout", () => {
  it("to 0.1.1 with soft purge finishes on all three nodes, kills nobody, and matches the plan", async () => {
    const { group, nodes } = await fleet();
    const plan = await server.cli(["rollout", "plan", group, "0.1.1", "--purge", "TestListener=soft", "--json"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect((JSON.parse(plan.stdout) as { totalKills: number }).totalKills).toBe(0);
    const acceptors = await Promise.all(nodes.map(acceptor));

    const id = await start(group, ["--soak", "2s", "--canary", "1", "--batch", "2"]);
    const waited = await server.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 240_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(0);
    expect(waited.stdout).toContain(`rollout ${id}: group ${group} to 0.1.1: done`);

    const r = await status(id);
    expect(r.status).toBe("done");
    expect(r.nodes.map((n) => n.node)).toEqual(nodes.map((n) => n.name));
    for (const n of r.nodes) {
      expect(n.step).toBe("permanent");
      expect(n.fromVsn).toBe("0.1.0");
      // Predicted: nobody; died: nobody, as the agent saw it.
      expect(Object.values(n.predicted ?? {}).flat()).toEqual([]);
      expect(Object.values(n.actual ?? {}).flatMap((a) => a.died)).toEqual([]);
      expect(n.gate?.soakedMs).toBeGreaterThanOrEqual(2000);
      expect(n.gate?.unexpectedReports).toBe(0);
    }
    // The nodes themselves: 0.1.1 permanent everywhere, the acceptors alive (on old code: soft purge).
    for (const [i, n] of nodes.entries()) {
      expect(await releasesOf(n)).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
      expect(await alive(n, acceptors[i])).toBe(true);
      expect(await commandsOf(n.name)).toEqual({ install: 1, make_permanent: 1 });
    }
  }, 400_000);

  it("halts when a supervised child of the canary dies during its soak; the other two are not touched", async () => {
    const { group, nodes } = await fleet();
    const [canary, ...others] = nodes;
    const id = await start(group, ["--soak", "60s"]);
    await waitFor("the canary soaking", async () => (await status(id)).nodes[0].step === "soaking", 180_000, 500);
    // An unpredicted death on the canary: its supervisor restarts the acceptor.
    await kill(canary, await acceptor(canary));

    const waited = await server.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 120_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(8);
    const r = await status(id);
    expect(r.status).toBe("halted");
    expect(r.haltReason).toMatch(new RegExp(`^${canary.name}: health gate: \\d+ crash or supervisor report\\(s\\) the plan did not predict: supervisor_report child_terminated`));
    expect(r.nodes[0].step).toBe("gate_failed");
    expect(r.nodes.slice(1).map((n) => n.step)).toEqual(["unpacked", "unpacked"]);
    // The canary runs 0.1.1, installed but not permanent; the others still run 0.1.0 (0.1.1 only unpacked).
    expect(await releasesOf(canary)).toBe(`[{"0.1.0",permanent},{"0.1.1",current}]`);
    for (const n of others) {
      expect(await releasesOf(n)).toBe(`[{"0.1.0",permanent},{"0.1.1",unpacked}]`);
      expect(await commandsOf(n.name)).toEqual({});
    }
    // The alert says why.
    const api = httpClient(server.url, { token: server.apiToken });
    const alert = (await api.alerts.list.query({ status: "open" })).find((a) => a.kind === "rollout_halted" && (a.detail as { rolloutId: string }).rolloutId === id);
    expect(alert?.title).toContain(`Rollout ${id} of group ${group} to 0.1.1 halted: ${canary.name}: health gate`);
    expect(alert?.node).toBe(canary.name);
    // Halted is not running: a halt is refused; abort ends it, leaving the nodes as they are.
    const again = await server.cli(["rollout", "halt", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is halted; only a running rollout can be halted/);
    const aborted = await server.cli(["rollout", "abort", id]);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(aborted.stdout).toContain(`rollout ${id}: group ${group} to 0.1.1: aborted`);
    expect(await releasesOf(canary)).toBe(`[{"0.1.0",permanent},{"0.1.1",current}]`);
    // Its locks are free: the canary can be rolled back by hand.
    const rb = await server.cli(["upgrade", "rollback", canary.name, "--max-kills", "1000", "--yes"]);
    expect(rb.code, rb.stdout + rb.stderr).toBe(0);
  }, 400_000);

  it("with --auto-rollback, the canary that fails its gate is back on its previous release", async () => {
    const { group, nodes } = await fleet();
    const [canary, ...others] = nodes;
    const id = await start(group, ["--soak", "60s", "--auto-rollback"]);
    await waitFor("the canary soaking", async () => (await status(id)).nodes[0].step === "soaking", 180_000, 500);
    await kill(canary, await acceptor(canary));

    const waited = await server.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 180_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(8);
    const r = await status(id);
    expect(r.haltReason).toMatch(/\(auto-rollback: rolled back to 0\.1\.0\)$/);
    expect(r.nodes[0].step).toBe("rolled_back");
    const rels = await releasesOf(canary);
    expect(rels).toMatch(/\{"0\.1\.0",permanent\}/);
    expect(rels).not.toMatch(/current/);
    // Audited like any step: install then rollback, each with its intent and outcome.
    expect(await commandsOf(canary.name)).toEqual({ install: 1, rollback: 1 });
    for (const n of others) expect(await releasesOf(n)).toBe(`[{"0.1.0",permanent},{"0.1.1",unpacked}]`);
    const audit = await server.cli(["audit", "--node", canary.name, "--action", "upgrade.rollback", "--json"]);
    const entries = JSON.parse(audit.stdout) as { outcome: string | null; data: { planDigest?: string } }[];
    expect(entries.filter((e) => e.outcome === null)[0]?.data.planDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(entries.some((e) => e.outcome === "ok")).toBe(true);
  }, 400_000);

  it("an operator's halt stops it at the canary; resume soaks the canary again and finishes", async () => {
    const { group, nodes } = await fleet();
    const id = await start(group, ["--soak", "20s", "--batch", "2"]);
    await waitFor("the canary soaking", async () => (await status(id)).nodes[0].soakStartedAt !== null, 180_000, 300);
    const halted = await server.cli(["rollout", "halt", id, "--reason", "checking the logs"]);
    expect(halted.code, halted.stderr).toBe(0);
    expect(halted.stdout).toContain(`halted — halted by token:`);
    expect((await server.cli(["rollout", "status", id])).code).toBe(8);
    const before = await status(id);
    expect(before.nodes.map((n) => n.step)).toEqual(["soaking", "unpacked", "unpacked"]);

    const resumed = await server.cli(["rollout", "resume", id]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const waited = await server.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 300_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(0);
    const r = await status(id);
    expect(r.status).toBe("done");
    expect(r.haltReason).toBeNull();
    // The canary's soak started over on resume and ran in full; nothing was sent twice.
    expect(Date.parse(r.nodes[0].soakStartedAt as string)).toBeGreaterThan(Date.parse(before.nodes[0].soakStartedAt as string));
    expect(r.nodes[0].gate?.soakedMs).toBeGreaterThanOrEqual(20_000);
    for (const n of nodes) {
      expect(await releasesOf(n)).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
      expect(await commandsOf(n.name)).toEqual({ install: 1, make_permanent: 1 });
    }
  }, 500_000);

  it("continues after the server is killed mid-rollout: the soak starts over, no step is sent twice", async () => {
    const { group, nodes } = await fleet();
    const id = await start(group, ["--soak", "15s", "--canary", "1", "--batch", "1"]);
    await waitFor("the canary soaking", async () => (await status(id)).nodes[0].step === "soaking", 180_000, 300);
    // The rollout holds every node: neither a manual step nor a second rollout may drive one.
    const manual = await server.cli(["upgrade", "install", nodes[2].name, "0.1.1", "--purge", "TestListener=soft", "--yes"]);
    expect(manual.code).toBe(1);
    expect(manual.stderr).toContain(`${nodes[2].name} is being upgraded by rollout ${id}`);
    const second = await server.cli(["rollout", "start", group, "0.1.1", "--yes"]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`is being upgraded by rollout ${id}; no node was touched`));
    // Killed while a node soaks (the canary, or the next one by now), well before its soak ends.
    const soaking = await waitFor(
      "a node early in its soak",
      async () => (await status(id)).nodes.find((n) => n.step === "soaking" && n.soakStartedAt !== null && Date.now() - Date.parse(n.soakStartedAt) < 8000) ?? null,
      120_000,
      200,
    );
    await server.kill();
    const killedAt = Date.now();
    await server.restart();
    await Promise.all(nodes.map((n) => waitConnected(server, n.name, true, 60_000)));

    const waited = await server.cli(["rollout", "status", id, "--wait"], {}, { timeoutMs: 300_000 });
    expect(waited.code, waited.stdout + waited.stderr).toBe(0);
    const r = await status(id);
    expect(r.status).toBe("done");
    // The soak the kill interrupted started over after the restart (never skipped), and ran in full.
    const resumed = r.nodes.find((n) => n.node === soaking.node) as RolloutNodeJson;
    expect(new Date(resumed.soakStartedAt as string).getTime()).toBeGreaterThan(Math.max(new Date(soaking.soakStartedAt as string).getTime(), killedAt));
    for (const n of r.nodes) expect(n.gate?.soakedMs).toBeGreaterThanOrEqual(15_000);
    for (const n of nodes) {
      expect(await releasesOf(n)).toBe(`[{"0.1.0",old},{"0.1.1",permanent}]`);
      expect(await commandsOf(n.name)).toEqual({ install: 1, make_permanent: 1 });
    }
  }, 500_000);
});
