/**
 * What an agent token can make the server do with `fallback` events (issue
 * 15, attacked): the server writes `upgrade.fallback` audit entries and marks
 * upgrades rolled back on the agent's word, so that word must be about an
 * install this server sent to that node with a fallback timer. The node is
 * real until the install; then its token's holder (and another node's) speak
 * the wire protocol directly (tests/support/raw-agent.ts), because what is
 * tested is only what the server does with the frames they send.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { connectRaw, isRefusal } from "../support/raw-agent";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

let server: TestServer;
let node: BeamNode;
let token: string;

beforeAll(async () => {
  server = await startServer();
  ({ node, token } = await startAgentNode(server));
  await waitConnected(server, node.name);
});
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

const cli = (args: string[]) => server.cli(args);

/** A fallback record as the agent sends it (docs/protocol.md, "event"), naming `commandId`. */
function record(commandId: string, vsn: string) {
  return { vsn, from: "0.1.0", deadline: Date.now(), durationMs: 5000, commandId, rollbackDigest: null, maxKills: null, acceptFindings: [] };
}

/** An agent token's holder speaking the wire protocol as `name` (docs/protocol.md, "event"). */
async function forger(token: string, name: string) {
  const raw = await connectRaw(server.agentUrl, token, name);
  if (isRefusal(raw)) throw new Error(`${name} refused: ${raw.status} ${raw.body}`);
  const bootId = randomUUID().replaceAll("-", "");
  expect((await raw.hello({ bootId, capabilities: ["procs", "events", "fallback"] })).type).toBe("welcome");
  let seq = 0;
  return {
    raw,
    forge(context: string, commandId: string, vsn: string, text: string, at = Date.now()) {
      seq += 1;
      raw.send({ type: "event", seq, bootId, at, kind: "fallback", context, reason: { text, truncated: false }, fallback: record(commandId, vsn), rollbackCommandId: null });
    },
  };
}

async function storedFallbacks(name: string): Promise<string[]> {
  const r = await cli(["events", name, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { kind: string; reason: string | null }[]).filter((e) => e.kind === "fallback").map((e) => e.reason ?? "");
}

describe("forged fallback events", () => {
  it("an install without a fallback, another command, another node's install: stored as events, never audited nor rolled back", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    const unpackId = `c-${randomUUID()}`;
    await admin.upgrades.unpack.mutate({ node: node.name, vsn: "0.1.1", commandId: unpackId });
    await waitFor("the unpack done", async () => (await admin.upgrades.command.query({ node: node.name, commandId: unpackId }))?.status === "ok", 60_000, 300);
    const plan = JSON.parse((await cli(["upgrade", "plan", node.name, "0.1.1", "--json"])).stdout) as { digest: string };
    const install = await cli(["upgrade", "install", node.name, "0.1.1", "--accept-plan", plan.digest, "--yes"]);
    expect(install.code, install.stderr).toBe(0);
    const [upgrade] = await admin.upgrades.history.query({ node: node.name });
    expect(upgrade.status).toBe("installed");
    const installId = upgrade.commands.find((c) => c.action === "install")?.id ?? "";
    expect(installId).toMatch(/^c-/);

    // The node's own token (its agent stopped, so the forger holds the connection): its install had no fallback;
    // a command that is no install; a release it did not install.
    await node.stop();
    await waitConnected(server, node.name, false, 30_000);
    const own = await forger(token, node.name);
    own.forge("rolled_back", installId, "0.1.1", "forged: no fallback");
    own.forge("rolled_back", unpackId, "0.1.1", "forged: not an install");
    own.forge("rolled_back", installId, "9.9.9", "forged: other release");
    // Another node's token, naming this node's install.
    const mallory = await forger(await server.agentToken("mallory"), "mallory@127.0.0.1");
    mallory.forge("rolled_back", installId, "0.1.1", "forged: other node");

    // All four reached the server and were stored (so the server did read them)…
    await waitFor("the node's forged events stored", async () => (await storedFallbacks(node.name)).length === 3, 30_000, 300);
    await waitFor("mallory's forged event stored", async () => (await storedFallbacks("mallory@127.0.0.1")).length === 1, 30_000, 300);
    own.raw.close();
    mallory.raw.close();
    // …and a short window for the listener that follows storing (it runs right after the insert).
    await sleep(3000);
    const [after] = await admin.upgrades.history.query({ node: node.name });
    expect(after.status).toBe("installed");
    const audited = (await admin.audit.list.query({ action: "upgrade.fallback" })).entries;
    expect(audited).toEqual([]);
  }, 300_000);

  it("a replayed outcome for an install with a fallback: the first one counts", async () => {
    ({ node, token } = await startAgentNode(server));
    await waitConnected(server, node.name);
    const admin = httpClient(server.url, { token: server.apiToken });
    expect((await cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    const plan = JSON.parse((await cli(["upgrade", "plan", node.name, "0.1.1", "--json"])).stdout) as { digest: string };
    const install = await cli(["upgrade", "install", node.name, "0.1.1", "--accept-plan", plan.digest, "--fallback", "1h", "--yes"]);
    expect(install.code, install.stderr).toBe(0);
    const perm = JSON.parse((await cli(["upgrade", "plan", node.name, "0.1.1", "--json"])).stdout) as { digest: string };
    const made = await cli(["upgrade", "permanent", node.name, "0.1.1", "--accept-plan", perm.digest, "--yes"]);
    expect(made.code, made.stderr).toBe(0);
    const fallbacks = async () => (await admin.audit.list.query({ action: "upgrade.fallback", node: node.name })).entries.map((e) => (e.data as { outcome: string }).outcome);
    await waitFor("the agent's cleared outcome audited", async () => (await fallbacks()).length === 1, 30_000, 300);
    const [upgrade] = await admin.upgrades.history.query({ node: node.name });
    expect(upgrade.fallback?.outcome).toBe("cleared");
    const installId = upgrade.commands.find((c) => c.action === "install")?.id ?? "";

    // The node's token replays a different outcome for the same install, dated later (the history must not take the newest).
    await node.stop();
    await waitConnected(server, node.name, false, 30_000);
    const own = await forger(token, node.name);
    own.forge("rolled_back", installId, "0.1.1", "forged: replay", Date.now() + 3_600_000);
    await waitFor("the replay stored", async () => (await storedFallbacks(node.name)).includes("forged: replay"), 30_000, 300);
    own.raw.close();
    await sleep(3000);
    expect(await fallbacks()).toEqual(["cleared"]);
    const [after] = await admin.upgrades.history.query({ node: node.name });
    expect(after.status).toBe("permanent");
    expect(after.fallback?.outcome).toBe("cleared");
  }, 300_000);
});
