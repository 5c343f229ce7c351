/**
 * Groups and version drift (issue 15), on real nodes: a node's group is its
 * agent's BEAMDECK_GROUP, else the name of the release it runs; `beamdeck
 * groups` lists nodes per group with the release each runs; a group whose
 * connected nodes run different releases pages through the `version_drift`
 * rule, and the alert resolves when they run one release again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

interface GroupJson {
  name: string;
  drift: boolean;
  versions: string[];
  connected: number;
  nodes: { name: string; connected: boolean; group: string | null; release: { name: string; vsn: string } | null }[];
}

let server: TestServer;
let shopRel: BeamNode;
let shopCounter: BeamNode;
let plain: BeamNode;

beforeAll(async () => {
  server = await startServer();
  const admin = httpClient(server.url, { token: server.apiToken });
  await admin.alerts.updateRule.mutate({ kind: "version_drift", enabled: true, params: { forSeconds: 2 } });
  // Two different releases in one group, and a node in its release's own group.
  // One after the other: the release builds share a cache directory.
  ({ node: shopRel } = await startAgentNode(server, { sname: `shop_a_${process.pid}`, env: { BEAMDECK_GROUP: "shop" } }));
  ({ node: shopCounter } = await startAgentNode(server, { release: "bd_counter", sname: `shop_b_${process.pid}`, env: { BEAMDECK_GROUP: "shop" } }));
  ({ node: plain } = await startAgentNode(server, { sname: `plain_${process.pid}` }));
  await Promise.all([shopRel, shopCounter, plain].map((n) => waitConnected(server, n.name)));
}, 600_000); // three releases, each rebuilt when the agent's sources changed
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

async function groups(): Promise<GroupJson[]> {
  const r = await server.cli(["groups", "--json"]);
  if (r.code !== 0) throw new Error(`beamdeck groups: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as GroupJson[];
}

describe("groups", () => {
  it("files nodes by BEAMDECK_GROUP, else by release name, with the release each runs", async () => {
    const all = await groups();
    const shop = all.find((g) => g.name === "shop");
    const relTest = all.find((g) => g.name === "rel_test");
    expect(shop?.nodes.map((n) => n.name).sort()).toEqual([shopRel.name, shopCounter.name].sort());
    expect(shop?.versions).toEqual(["bd_counter 1.0.0", "rel_test 0.1.0"]);
    expect(shop?.drift).toBe(true);
    expect(shop?.connected).toBe(2);
    expect(relTest?.nodes.map((n) => n.name)).toEqual([plain.name]);
    expect(relTest?.nodes[0]?.release).toEqual({ name: "rel_test", vsn: "0.1.0" });
    expect(relTest?.drift).toBe(false);
    // The nodes list carries the same group.
    const r = await server.cli(["nodes", "--json"]);
    const rows = JSON.parse(r.stdout) as { name: string; group: string | null }[];
    expect(rows.find((n) => n.name === shopCounter.name)?.group).toBe("shop");
    expect(rows.find((n) => n.name === plain.name)?.group).toBe("rel_test");
  });

  it("prints a table with the drift named", async () => {
    const r = await server.cli(["groups"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^GROUP\s+NODE\s+STATUS\s+RELEASE\s+OLD CODE\s+DRIFT/m);
    expect(r.stdout).toContain("yes: bd_counter 1.0.0 / rel_test 0.1.0");
    expect(r.stdout).toMatch(new RegExp(`rel_test\\s+${plain.name.replace(/[.@]/g, "\\$&")}\\s+connected\\s+rel_test 0\\.1\\.0`));
  });
});

describe("rollout plan", () => {
  interface RolloutJson {
    group: string;
    vsn: string;
    totalKills: number;
    exitCode: number;
    nodes: { node: string; plan?: { digest: string; verdict: string; step: string }; error?: string }[];
  }

  it("plans every node of the group, exits by the worst verdict, and matches each node's own plan", async () => {
    expect((await server.cli(["upgrade", "unpack", plain.name, "0.1.1"])).code).toBe(0);
    const r = await server.cli(["rollout", "plan", "rel_test", "0.1.1", "--json"]);
    const out = JSON.parse(r.stdout) as RolloutJson;
    const own = await server.cli(["upgrade", "plan", plain.name, "0.1.1", "--json"]);
    const ownPlan = JSON.parse(own.stdout) as { digest: string; verdict: string; killed: { install: string[]; make_permanent: string[] } };
    // The default appup kills the acceptor at make_permanent: would kill, exit 3, like `upgrade plan`.
    expect(own.code).toBe(3);
    expect(r.code, r.stderr).toBe(own.code);
    expect(out.exitCode).toBe(own.code);
    expect(out.nodes).toHaveLength(1);
    expect(out.nodes[0]).toMatchObject({ node: plain.name, plan: { digest: ownPlan.digest, verdict: "would_kill", step: "install" } });
    expect(out.totalKills).toBe(ownPlan.killed.install.length + ownPlan.killed.make_permanent.length);
    expect(out.totalKills).toBeGreaterThan(0);
  });

  it("says which nodes could not be planned and exits 1", async () => {
    // shop: the rel_test node plans from its 0.1.1 package; bd_counter has no such version.
    const r = await server.cli(["rollout", "plan", "shop", "0.1.1"]);
    expect(r.code).toBe(1);
    const line = (node: BeamNode) => r.stdout.split("\n").find((l) => l.startsWith(`${node.name} `)) ?? "";
    expect(line(shopRel)).toMatch(/install 0\.1\.0 -> 0\.1\.1\s+would_kill\s+\d+\s+-\s+[0-9a-f]{64}$/);
    expect(line(shopCounter)).toMatch(/not planned: no release 0\.1\.1/);
    expect(r.stdout).toMatch(/group shop to 0\.1\.1: 1 of 2 node\(s\) planned, [1-9]\d* process\(es\) would be killed in all/);
  });

  it("refuses an unknown group and a malformed --purge before asking any node", async () => {
    const unknown = await server.cli(["rollout", "plan", "nope", "0.1.1"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no group named nope \(groups: .*rel_test.*shop/);
    const bad = await server.cli(["rollout", "plan", "rel_test", "0.1.1", "--purge", "TestListener"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--purge takes Module=soft or Module=brutal/);
  });
});

describe("version drift", () => {
  const api = () => httpClient(server.url, { token: server.apiToken });

  it("pages once the group has run two releases for longer than the rule allows", async () => {
    const alert = await waitFor("the version_drift alert", async () => (await api().alerts.list.query({ status: "open" })).find((a) => a.kind === "version_drift") ?? null, 30_000, 500);
    expect(alert.title).toMatch(/^Group shop runs 2 releases for \d+ min: bd_counter 1\.0\.0, rel_test 0\.1\.0$/);
    expect((alert.detail as { group: string }).group).toBe("shop");
    // One group drifted: one alert, not one per node or per tick.
    await new Promise((r) => setTimeout(r, 6000));
    expect((await api().alerts.list.query({ status: "open" })).filter((a) => a.kind === "version_drift")).toHaveLength(1);
  });

  it("resolves when the group runs one release again", async () => {
    await shopCounter.stop();
    await waitConnected(server, shopCounter.name, false);
    const shop = (await groups()).find((g) => g.name === "shop");
    expect(shop?.drift).toBe(false);
    expect(shop?.connected).toBe(1);
    await waitFor("the drift alert resolved", async () => !(await api().alerts.list.query({ status: "open" })).some((a) => a.kind === "version_drift"), 30_000, 500);
    expect((await api().alerts.list.query({ status: "resolved" })).filter((a) => a.kind === "version_drift")).toHaveLength(1);
  });
});
