/**
 * The fallback timer (issue 15) on the forum's real release, through the
 * product (CLI → server → agent → release_handler): an install with
 * `--fallback DUR` that is not made permanent is rolled back by the agent
 * itself, with the server stopped; the event arrives once the server is
 * back. make_permanent before the deadline cancels it; a node restart with
 * a pending fallback boots the permanent release and clears it. Every claim
 * is read from the node itself (release_handler, the record file, a fresh
 * TCP client), not from the agent's word.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { startNode, stopAll, type BeamNode } from "../../tools/beam/nodes";
import { freePort, GreetingClient } from "../../tools/beam/tcp";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";

let server: TestServer;
let node: BeamNode;
let dir: string;
let token: string;
let port: number;

beforeEach(async () => {
  server = await startServer({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-fb-")) });
  port = await freePort();
  ({ node, dir, token } = await startAgentNode(server, { env: { REL_TEST_PORT: String(port) } }));
  await waitConnected(server, node.name);
});
afterEach(async () => {
  await stopAll();
  await server?.stop();
});
afterAll(async () => {
  await stopAll();
});

const cli = (args: string[]) => server.cli(args);
const releases = async () => (await node.rpcJson<[string, string, string[], string][]>("release_handler:which_releases()")).map(([, v, , s]) => `${v}:${s}`).sort();
const recordFile = () => path.join(dir, "releases", "beamdeck_agent_fallback.term");
/** The agent's journal of fallback events the server has not acked yet. */
const outcomeFile = () => path.join(dir, "releases", "beamdeck_agent_fallback_outcomes.term");

/** Unpack 0.1.1 and install it with a fallback, accepting the reviewed plan. */
async function installWithFallback(fallback: string) {
  expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
  const plan = JSON.parse((await cli(["upgrade", "plan", node.name, "0.1.1", "--json"])).stdout) as { digest: string };
  const r = await cli(["upgrade", "install", node.name, "0.1.1", "--accept-plan", plan.digest, "--fallback", fallback, "--yes"]);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

async function fallbackEvent(context: string) {
  return waitFor(
    `a fallback event (${context})`,
    async () => {
      const evs = JSON.parse((await cli(["events", node.name, "--json"])).stdout) as { kind: string; context: string; reason: string | null }[];
      return evs.find((e) => e.kind === "fallback" && e.context === context) ?? null;
    },
    60_000,
    500,
  );
}

type AuditRow = { action: string; actor: string; outcome: string | null; intentId: string | null; data: Record<string, unknown> };
const audit = async () => JSON.parse((await cli(["audit", "--json", "--action", "upgrade."])).stdout) as AuditRow[];
type Armed = { rollbackDigest: string; deadline: number; from: string; maxKills: number };
/** The agent's rollback done: 0.1.0 permanent and current again (up to a minute past the armed deadline). */
async function backOnFrom(armed: Armed): Promise<void> {
  await waitFor(
    "the node back on 0.1.0",
    async () => {
      const r = await releases();
      return r.includes("0.1.0:permanent") && !r.includes("0.1.1:current");
    },
    armed.deadline - Date.now() + 60_000,
    500,
  );
}

/** `upgrade status` says the upgrade rolled back, by the fallback (the server stored the agent's outcome). */
async function statusRolledBack(): Promise<void> {
  await waitFor(
    "the upgrade rolled back",
    async () => {
      const s = await cli(["upgrade", "status", node.name]);
      return /rolled_back/.test(s.stdout) && /fallback rolled_back: fallback: 0\.1\.1 was not made permanent/.test(s.stdout) ? s : null;
    },
    20_000,
    500,
  );
}

/** The fallback the install's audited outcome records (the agent's record). */
async function armedFallback(rows?: AuditRow[]): Promise<Armed> {
  const outcome = (rows ?? (await audit())).find((e) => e.action === "upgrade.install" && e.outcome === "ok");
  if (!outcome) throw new Error("no audited install outcome");
  return outcome.data.fallback as Armed;
}

describe("the fallback timer", () => {
  it("not made permanent: the agent rolls back with the server stopped; the event arrives when it is back", async () => {
    // Long enough that the server is surely stopped before the deadline (checked below).
    const install = await installWithFallback("20s");
    expect(install.stdout).toMatch(/falls back to 0\.1\.0 at \S+ unless made permanent \(\d+s left\)/);
    const status = await cli(["upgrade", "status", node.name]);
    expect(status.stdout).toMatch(/falls back to 0\.1\.0 at .* unless made permanent/);

    // The intent records the duration and the deadline; the outcome the agent's deadline and the rollback plan's digest.
    const rows = await audit();
    const intent = rows.find((e) => e.action === "upgrade.install" && e.intentId === null);
    expect(intent?.data.fallback).toMatchObject({ durationMs: 20_000, rollbackTo: "0.1.0" });
    const armed = await armedFallback(rows);
    expect(armed.rollbackDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(armed.from).toBe("0.1.0");
    // The record is on the node's disk, durable.
    expect(fs.readFileSync(recordFile(), "utf8")).toContain(armed.rollbackDigest);

    await server.stop();
    // Still on 0.1.1 with no server: whatever happens next is the agent's own doing.
    expect(await releases()).toEqual(["0.1.0:permanent", "0.1.1:current"]);
    expect(Date.now()).toBeLessThan(armed.deadline);

    await backOnFrom(armed);
    expect(Date.now()).toBeGreaterThanOrEqual(armed.deadline);
    // The current code of the changed module is 0.1.0's again (a fresh client
    // may still meet the outgoing code: the supervisor can restart the killed
    // acceptor during the load, see upgrade-server.test.ts); the record is gone.
    expect(await node.rpc(`code:which('Elixir.TestListener')`)).toMatch(/rel_test-0\.1\.0\/ebin/);
    await waitFor("the record removed", async () => !fs.existsSync(recordFile()), 10_000, 200);

    await server.restart();
    await waitConnected(server, node.name, true, 60_000);
    const ev = await fallbackEvent("rolled_back");
    expect(ev.reason).toBe("fallback: 0.1.1 was not made permanent in time; rolled back to 0.1.0");
    await statusRolledBack();
    const fb = (await audit()).find((e) => e.action === "upgrade.fallback");
    expect(fb).toMatchObject({ actor: "agent", outcome: "ok", data: { outcome: "rolled_back", rollbackCommandId: expect.stringMatching(/^fallback-c-/) } });
  }, 400_000);

  it("rolled back with the server stopped, then the node restarted before the server is back: the event, its audit entry and the status arrive once", async () => {
    const install = await installWithFallback("10s");
    expect(install.code).toBe(0);
    const armed = await armedFallback();
    await server.stop();
    expect(Date.now()).toBeLessThan(armed.deadline);
    await backOnFrom(armed);
    // The outcome is on the node's disk (journaled before the record went), not only in the agent's memory.
    const journaled = await waitFor("the outcome journaled", async () => (fs.existsSync(outcomeFile()) ? fs.readFileSync(outcomeFile(), "utf8") : null), 10_000, 200);
    expect(journaled).toContain("rolled_back");
    expect(fs.existsSync(recordFile())).toBe(false);

    // The node restarts (killed) while the server is still down: the agent's memory is gone.
    const sname = node.name.split("@")[0];
    await node.stop(0);
    node = await startNode({ release: "rel_test", dir, sname, env: { BEAMDECK_URL: server.agentUrl, BEAMDECK_TOKEN: token, REL_TEST_PORT: String(port) } });
    expect(await releases()).toEqual(["0.1.0:permanent", "0.1.1:unpacked"]);

    await server.restart();
    await waitConnected(server, node.name, true, 60_000);
    const ev = await fallbackEvent("rolled_back");
    expect(ev.reason).toBe("fallback: 0.1.1 was not made permanent in time; rolled back to 0.1.0");
    // Acked by the server: out of the journal.
    await waitFor("the journal emptied", async () => !fs.existsSync(outcomeFile()), 20_000, 200);
    await statusRolledBack();
    // Once: one event (of this kind and context), one audit entry.
    await sleep(2000);
    const evs = JSON.parse((await cli(["events", node.name, "--json"])).stdout) as { kind: string; context: string }[];
    expect(evs.filter((e) => e.kind === "fallback")).toHaveLength(1);
    const fb = (await audit()).filter((e) => e.action === "upgrade.fallback");
    expect(fb).toHaveLength(1);
    expect(fb[0]).toMatchObject({ actor: "agent", outcome: "ok", data: { outcome: "rolled_back" } });
  }, 400_000);

  it("made permanent before the deadline: no rollback", async () => {
    await installWithFallback("30s");
    const { deadline } = await armedFallback();
    const permPlan = JSON.parse((await cli(["upgrade", "plan", node.name, "0.1.1", "--json"])).stdout) as { digest: string; step: string };
    expect(permPlan.step).toBe("make_permanent");
    const perm = await cli(["upgrade", "permanent", node.name, "0.1.1", "--accept-plan", permPlan.digest, "--yes"]);
    expect(perm.code, perm.stderr).toBe(0);
    expect(Date.now()).toBeLessThan(deadline);
    const ev = await fallbackEvent("cleared");
    expect(ev.reason).toBe("fallback: 0.1.1 was made permanent; the fallback is cleared");
    expect(fs.existsSync(recordFile())).toBe(false);
    // Past the deadline: still 0.1.1, permanent.
    await sleep(Math.max(0, deadline - Date.now()) + 3000);
    expect(await releases()).toContain("0.1.1:permanent");
    expect(await releases()).not.toContain("0.1.0:permanent");
    const fresh = await GreetingClient.connect(port);
    expect(await fresh.hello()).toBe("Hey there, next version!\n");
    fresh.close();
    expect((await audit()).filter((e) => e.action === "upgrade.fallback").map((e) => e.data.outcome)).toEqual(["cleared"]);
  }, 400_000);

  it("a node restart with a pending fallback boots the permanent release and clears it", async () => {
    // A duration out of bounds or malformed is a usage error (exit 2), and nothing is sent.
    const short = await cli(["upgrade", "install", node.name, "0.1.1", "--fallback", "3s", "--yes"]);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain("--fallback: the fallback must be from 5s to 24h, not 3s");
    const bad = await cli(["upgrade", "install", node.name, "0.1.1", "--fallback", "soon", "--yes"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"soon" is not a duration: use a number with h, m or s, like 20m, 1200s or 1h30m');
    await installWithFallback("10m");
    expect(fs.existsSync(recordFile())).toBe(true);
    const sname = node.name.split("@")[0];
    await node.stop(0);
    node = await startNode({ release: "rel_test", dir, sname, env: { BEAMDECK_URL: server.agentUrl, BEAMDECK_TOKEN: token, REL_TEST_PORT: String(port) } });
    // release_handler boots the permanent release; the installed one reads as unpacked.
    expect(await releases()).toEqual(["0.1.0:permanent", "0.1.1:unpacked"]);
    await waitConnected(server, node.name, true, 60_000);
    const ev = await fallbackEvent("node_restarted");
    expect(ev.reason).toBe("fallback: node restarted into permanent release 0.1.0; 0.1.1 is not running (unpacked), nothing to roll back");
    expect(fs.existsSync(recordFile())).toBe(false);
    const s = await waitFor(
      "the status says so",
      async () => {
        const r = await cli(["upgrade", "status", node.name]);
        return /fallback node_restarted/.test(r.stdout) ? r.stdout : null;
      },
      20_000,
      500,
    );
    expect(s).toMatch(/rolled_back/);
    expect(s).not.toMatch(/falls back to/);
  }, 400_000);

  it("a pending fallback keeps the node from another install and from a rollout, once the install's lock is released (attack finding 7)", async () => {
    await installWithFallback("10m");
    expect((await cli(["upgrade", "unpack", node.name, "0.1.2"])).code).toBe(0);
    const sent = async () => (await audit()).filter((e) => e.outcome === null && e.action !== "upgrade.unpack").length;
    const before = await sent();
    const pending = new RegExp(
      `${node.name} has a pending fallback timer: 0\\.1\\.1 \\(upgrade \\S+\\) falls back to 0\\.1\\.0 at \\S+ unless made permanent \\(\\d+m \\d+s left\\); make it permanent or roll it back first`,
    );
    // The install's result is recorded, so its step lock is free: the refusal names the fallback, not a lock.
    const install = await cli(["upgrade", "install", node.name, "0.1.2", "--max-kills", "1000", "--yes"]);
    expect(install.code, install.stdout).toBe(1);
    expect(install.stderr).toMatch(pending);
    const groups = JSON.parse((await cli(["groups", "--json"])).stdout) as { name: string; nodes: { name: string }[] }[];
    const group = groups.find((g) => g.nodes.some((n) => n.name === node.name))?.name as string;
    const rollout = await cli(["rollout", "start", group, "0.1.2", "--max-kills", "1000", "--yes"]);
    expect(rollout.code, rollout.stdout).toBe(1);
    expect(rollout.stderr).toMatch(pending);
    expect(rollout.stderr).toContain("no node was touched");
    expect(JSON.parse((await cli(["audit", "--json", "--action", "rollout."])).stdout)).toEqual([]);
    // Nothing was sent: the node still runs 0.1.1 installed, 0.1.2 only unpacked; no new step intent.
    expect(await releases()).toEqual(["0.1.0:permanent", "0.1.1:current", "0.1.2:unpacked"]);
    expect(await sent()).toBe(before);
    // Resolved (made permanent), the fallback no longer speaks for the node: the install is no longer refused for it.
    const permPlan = JSON.parse((await cli(["upgrade", "plan", node.name, "0.1.1", "--json"])).stdout) as { digest: string };
    expect((await cli(["upgrade", "permanent", node.name, "0.1.1", "--accept-plan", permPlan.digest, "--yes"])).code).toBe(0);
    const after = await cli(["upgrade", "install", node.name, "0.1.2", "--max-kills", "1000", "--yes"]);
    expect(after.stderr).not.toMatch(/pending fallback/);
    expect(after.code, after.stderr).toBe(0);
  }, 400_000);
});
