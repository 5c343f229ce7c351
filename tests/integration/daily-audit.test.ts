/**
 * Issue 14, item 9 — an audit that reads on its own, on a real node and a
 * real soft-purge install of the demo release (0.1.0 → 0.1.1):
 * the install intent records the processes accepted onto old code (those
 * the node itself says run old TestListener code afterwards) and the
 * findings accepted; `beamdeck audit` prints the intent's outcome and a
 * details column; the node's timeline (`beamdeck events`) shows the steps.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { GreetingClient } from "../../tools/beam/tcp";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { freePort } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { parseExposition } from "../support/prometheus-text";
import { httpClient } from "../support/trpc-clients";

let server: TestServer;
let node: BeamNode;
let client: GreetingClient | null = null;

beforeAll(async () => {
  server = await startServer({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-daily-audit-")) });
  const port = await freePort();
  ({ node } = await startAgentNode(server, { env: { REL_TEST_PORT: String(port) } }));
  await waitConnected(server, node.name, true, 60_000);
  client = await GreetingClient.connect(port);
  expect(await client.hello()).toBe("Hey there!\n");
  // Starting a server and a release node takes minutes when the machine is loaded.
}, 600_000);
afterAll(async () => {
  client?.close();
  await stopAll();
  await server?.stop();
});

const onOldCode = () => node.rpcJson<string[]>(`lists:sort([pid_to_list(P) || P <- processes(), erlang:check_process_code(P, 'Elixir.TestListener')])`);

interface Intent {
  id: string;
  intentId: string | null;
  outcome: string | null;
  data: { acceptedOntoOldCode: { pid: string; module: string }[]; findingsAccepted: { id: string; severity: string }[]; toVsn: string };
}

describe("an audit that reads on its own", () => {
  it("records who was accepted onto old code, prints outcomes and details, and shows the steps in the node's timeline", async () => {
    expect((await server.cli(["upgrade", "unpack", node.name, "0.1.1"], {}, { timeoutMs: 240_000 })).code).toBe(0);
    const plan = await server.cli(["upgrade", "plan", node.name, "0.1.1", "--purge", "TestListener=soft", "--json"]);
    expect(plan.code, plan.stderr).toBe(0);
    const planned = JSON.parse(plan.stdout) as { findings: { id: string }[] };
    const install = await server.cli(["upgrade", "install", node.name, "0.1.1", "--purge", "TestListener=soft", "--yes"], {}, { timeoutMs: 240_000 });
    expect(install.code, install.stderr).toBe(0);

    const stuck = await onOldCode();
    expect(stuck.length).toBeGreaterThanOrEqual(2); // the acceptor and the open connection's handler
    const audit = await server.cli(["audit", "--json", "--action", "upgrade.install", "--node", node.name]);
    const rows = JSON.parse(audit.stdout) as Intent[];
    const intent = rows.find((r) => r.intentId === null && r.data.toVsn === "0.1.1");
    expect(intent).toBeDefined();
    expect(intent!.data.acceptedOntoOldCode.map((p) => p.pid).sort()).toEqual(stuck);
    expect(new Set(intent!.data.acceptedOntoOldCode.map((p) => p.module))).toEqual(new Set(["Elixir.TestListener"]));
    expect(intent!.data.findingsAccepted.map((f) => f.id).sort()).toEqual(planned.findings.map((f) => f.id).sort());
    const answer = rows.find((r) => r.intentId === intent!.id);
    expect(answer?.outcome).toBe("ok");

    const text = await server.cli(["audit", "--action", "upgrade.install", "--node", node.name]);
    expect(text.code).toBe(0);
    const header = text.stdout.split("\n")[0];
    expect(header).toMatch(/OUTCOME\s+DETAILS$/);
    const intentLine = text.stdout.split("\n").find((l) => l.startsWith(`${intent!.id} `)) ?? "";
    expect(intentLine).toContain(`intent → ok #${answer!.id}`);
    expect(intentLine).toMatch(new RegExp(`install 0\\.1\\.0→0\\.1\\.1; kills \\d+; ${stuck.length} left on old code`));
    const answerLine = text.stdout.split("\n").find((l) => l.startsWith(`${answer!.id} `)) ?? "";
    expect(answerLine).toContain(`ok (intent #${intent!.id})`);

    const events = await server.cli(["events", node.name]);
    expect(events.code).toBe(0);
    const lines = events.stdout.split("\n");
    // Columns: SEQ AT KIND CONTEXT SUPERVISOR REASON OFFENDER (a step has no seq and no supervisor: "-").
    const installAt = lines.findIndex((l) => /^-\s+\S+\s+upgrade\.install\s+to 0\.1\.1\s+-\s+ok\s+by /.test(l));
    const unpackAt = lines.findIndex((l) => /^-\s+\S+\s+upgrade\.unpack\s+to 0\.1\.1\s+-\s+ok\s+by /.test(l));
    expect(installAt, events.stdout).toBeGreaterThan(0);
    expect(installAt).toBeGreaterThan(0);
    // Newest first: the install after the unpack.
    expect(unpackAt).toBeGreaterThan(installAt);

    // --json carries the same steps, from the same merge as the events page (server/events/timeline.ts).
    type Item = { kind: string; at: string; action?: string; vsn?: string; status?: string; commandId?: string };
    const items = JSON.parse((await server.cli(["events", node.name, "--json"])).stdout) as Item[];
    const steps = items.filter((x) => x.kind === "upgrade_step");
    const page = await httpClient(server.url, { token: server.apiToken }).events.upgradeSteps.query({ node: node.name });
    expect(steps.map((x) => x.commandId)).toEqual(page.map((x) => x.commandId));
    expect(steps.map((x) => [x.action, x.vsn, x.status])).toEqual(
      expect.arrayContaining([
        ["install", "0.1.1", "ok"],
        ["unpack", "0.1.1", "ok"],
      ]),
    );
    const ats = items.map((x) => Date.parse(x.at));
    expect(ats).toEqual([...ats].sort((a, b) => b - a));
    // /metrics: the node's newest upgrade, its target and its outcome as the upgrade history has them.
    const [newest] = await httpClient(server.url, { token: server.apiToken }).upgrades.history.query({ node: node.name, limit: 1 });
    expect(newest.toVsn).toBe("0.1.1");
    const m = parseExposition(await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiToken}` }, signal: AbortSignal.timeout(20_000) })).text());
    expect(m.find("beamdeck_node_last_upgrade", { node: node.name }).map((x) => x.labels)).toEqual([{ node: node.name, to_vsn: "0.1.1", status: newest.status }]);
    expect(m.value("beamdeck_node_last_upgrade_timestamp_seconds", { node: node.name })).toBe(new Date(newest.createdAt).getTime() / 1000);

    // Under an event filter the timeline has no steps (they have no context), in --json as in the text.
    const filtered = JSON.parse((await server.cli(["events", node.name, "--json", "--context", "child_terminated"])).stdout) as Item[];
    expect(filtered.filter((x) => x.kind === "upgrade_step")).toEqual([]);
  }, 600_000);
});
