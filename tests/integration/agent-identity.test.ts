/**
 * Node identity (issue 10, item 1) against a real node and a real server:
 * a second token (plain, fresh, or fleet) cannot take over a bound name, the
 * live socket is untouched; fleet tokens claim only their pattern; the same
 * token may take over (a restart); an admin rebinds or releases, audited;
 * the CLI shows which token a node is bound to.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { connectRaw, isRefusal, type RawAgent } from "../support/raw-agent";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

let server: TestServer;
let node: BeamNode;
let nodeTokenId: string;

const idOf = (token: string) => /^bdagt_([a-z2-9]{10})_/.exec(token)?.[1] as string;

type NodeRow = { name: string; connected: boolean; connectedSince: number | null; boundTokenId: string | null };
async function nodesJson(): Promise<NodeRow[]> {
  const r = await server.cli(["nodes", "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as NodeRow[];
}

async function agent(token: string, name: string): Promise<RawAgent> {
  const a = await connectRaw(server.agentUrl, token, name);
  if (isRefusal(a)) throw new Error(`refused: ${a.status} ${a.body}`);
  return a;
}

beforeAll(async () => {
  server = await startServer();
  const started = await startAgentNode(server);
  node = started.node;
  nodeTokenId = idOf(started.token);
  await waitConnected(server, node.name);
}, 300_000);
afterAll(async () => {
  await stopAll();
  await server?.stop();
});

describe("node identity", () => {
  it("refuses a fresh plain token, another bound token and a fleet token on a bound name with 403, leaving the live node alone", async () => {
    const before = (await nodesJson()).find((n) => n.name === node.name);
    expect(before).toMatchObject({ connected: true, boundTokenId: nodeTokenId });
    const attackers = await Promise.all([server.agentToken("fresh"), server.agentToken("fleet-any", "*"), server.agentToken(`fleet-${node.sname}`, `${node.sname}@*`)]);
    for (const token of attackers) {
      const r = await connectRaw(server.agentUrl, token, node.name);
      expect(isRefusal(r) && r.status, String(token)).toBe(403);
      expect(isRefusal(r) && r.body).toMatch(new RegExp(`bound to another agent token \\(${nodeTokenId}\\)`));
    }
    // The real node's socket was never replaced: same connection, still answering.
    const after = (await nodesJson()).find((n) => n.name === node.name);
    expect(after).toMatchObject({ connected: true, connectedSince: before?.connectedSince, boundTokenId: nodeTokenId });
    const api = httpClient(server.url, { token: server.apiToken });
    expect((await api.nodes.get.query({ node: node.name })).boundTokenId).toBe(nodeTokenId);
    // A fresh token that tried a bound name did not get bound to it either.
    const fresh = attackers[0];
    const own = await agent(fresh, "fresh-own@host");
    expect((await own.hello()).type).toBe("welcome");
    own.close();
  }, 240_000);

  it("lets a fleet token claim only names matching its pattern, and checks hello's group", async () => {
    const token = await server.agentToken("shop fleet", "shop_*@*");
    const outside = await connectRaw(server.agentUrl, token, "billing_1@host");
    expect(isRefusal(outside) && outside.status).toBe(403);
    expect(isRefusal(outside) && outside.body).toMatch(/only claim names matching shop_\*@\*/);
    const a = await agent(token, "shop_1@host");
    const b = await agent(token, "shop_2@host");
    expect((await a.hello()).type).toBe("welcome");
    expect((await b.hello()).type).toBe("welcome");
    // The fleet token never takes over a live name, even its own.
    const again = await connectRaw(server.agentUrl, token, "shop_1@host");
    expect(isRefusal(again) && again.status).toBe(403);
    expect(isRefusal(again) && again.body).toMatch(/live name/);
    expect(a.ws.readyState).toBe(a.ws.OPEN);
    const rows = await nodesJson();
    expect(rows.find((n) => n.name === "shop_1@host")?.boundTokenId).toBe(idOf(token));
    a.close();
    b.close();

    const r = await server.cli(["agent-token", "create", "grouped", "--fleet", "grp_*", "--group", "blue", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const grouped = (JSON.parse(r.stdout) as { token: string }).token;
    const wrong = await agent(grouped, "grp_1");
    wrong.send({ ...(await import("../support/raw-agent")).helloFrame("grp_1"), group: "red" });
    expect((await wrong.closed).code).toBe(4403);
    const right = await agent(grouped, "grp_2");
    expect((await right.hello({ group: "blue" })).type).toBe("welcome");
    right.close();
  }, 240_000);

  it("lets the same token take over its own name (a node restart), replacing the old socket with 4409", async () => {
    const token = await server.agentToken("restart");
    const first = await agent(token, "restart@host");
    await first.hello();
    const second = await agent(token, "restart@host");
    await second.hello();
    expect((await first.closed).code).toBe(4409);
    expect(second.ws.readyState).toBe(second.ws.OPEN);
    second.close();
  }, 240_000);

  it("lets an admin rebind a name (the socket under the old token goes, 4403) and release it, both audited", async () => {
    const oldToken = await server.agentToken("old");
    const newToken = await server.agentToken("new");
    const a = await agent(oldToken, "moved@host");
    await a.hello();
    const refused = await connectRaw(server.agentUrl, newToken, "moved@host");
    expect(isRefusal(refused) && refused.status).toBe(403);
    // The old plain token stays bound to its node; rebinding a name needs a token free for it.
    const bind = await server.cli(["agent-token", "bind", "moved@host", idOf(newToken)]);
    expect(bind.code, bind.stderr).toBe(0);
    expect((await a.closed).code).toBe(4403);
    const b = await agent(newToken, "moved@host");
    expect((await b.hello()).type).toBe("welcome");
    b.close();
    expect((await nodesJson()).find((n) => n.name === "moved@host")?.boundTokenId).toBe(idOf(newToken));

    const release = await server.cli(["agent-token", "release", "moved@host"]);
    expect(release.code, release.stderr).toBe(0);
    expect((await nodesJson()).find((n) => n.name === "moved@host")?.boundTokenId).toBeNull();
    const claimer = await server.agentToken("claimer", "moved@*");
    const c = await agent(claimer, "moved@host");
    expect((await c.hello()).type).toBe("welcome");
    c.close();
    expect((await nodesJson()).find((n) => n.name === "moved@host")?.boundTokenId).toBe(idOf(claimer));

    const api = httpClient(server.url, { token: server.apiToken });
    const audit = (await api.audit.list.query({ limit: 50 })) as unknown as { entries: { action: string; target: string | null }[] };
    const actions = audit.entries.filter((e) => e.target === "node:moved@host").map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["node.bind", "node.release"]));
  }, 240_000);

  it("shows the bound token in `beamdeck nodes`", async () => {
    await waitFor("bound token listed", async () => {
      const r = await server.cli(["nodes"]);
      return r.code === 0 && r.stdout.includes("TOKEN") && r.stdout.split("\n").some((l) => l.includes(node.name) && l.includes(nodeTokenId));
    });
  }, 240_000);
});
