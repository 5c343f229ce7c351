/**
 * The agent endpoint against a real server: authentication at the upgrade,
 * token binding, malformed frames and revocation, each without harming
 * other agents.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRaw, isRefusal, type RawAgent } from "../support/raw-agent";
import { startServer, type TestServer } from "../support/server";
import { waitFor } from "../support/ports";

let server: TestServer;

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.stop();
});

async function agent(token: string | null, node: string): Promise<RawAgent> {
  const a = await connectRaw(server.agentUrl, token, node);
  if (isRefusal(a)) throw new Error(`refused: ${a.status} ${a.body}`);
  return a;
}

async function nodesJson(): Promise<{ name: string; connected: boolean }[]> {
  const r = await server.cli(["nodes", "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe("agent endpoint", () => {
  it("refuses a missing or wrong token with 401 and a one-line reason", async () => {
    const missing = await connectRaw(server.agentUrl, null, "a@h");
    expect(isRefusal(missing) && missing.status).toBe(401);
    expect(isRefusal(missing) && missing.body).toBe("missing agent token (Authorization: Bearer <token>)\n");
    const wrong = await connectRaw(server.agentUrl, "bdagt_aaaaaaaaaa_" + "x".repeat(43), "a@h");
    expect(isRefusal(wrong) && wrong.status).toBe(401);
    expect(isRefusal(wrong) && wrong.body).toMatch(/not recognised/);
  });

  it("binds a token to its first node and refuses it to another with 403", async () => {
    const token = await server.agentToken("bound");
    const a = await agent(token, "first@host");
    await a.hello();
    const other = await connectRaw(server.agentUrl, token, "second@host");
    expect(isRefusal(other) && other.status).toBe(403);
    expect(isRefusal(other) && other.body).toMatch(/bound to node first@host/);
    // The first node is untouched.
    expect(a.ws.readyState).toBe(a.ws.OPEN);
    a.close();
  });

  it("lets a fleet token serve many nodes", async () => {
    const token = await server.agentToken("fleet", true);
    const a = await agent(token, "fleet1@host");
    const b = await agent(token, "fleet2@host");
    expect((await a.hello()).type).toBe("welcome");
    expect((await b.hello()).type).toBe("welcome");
    a.close();
    b.close();
  });

  it("closes a socket that sends a malformed frame with 4400 and a reason, and no other", async () => {
    const good = await agent(await server.agentToken("good"), "good@host");
    await good.hello();
    const cases: [unknown, RegExp][] = [
      ["{not json", /not valid JSON/],
      [{ type: "procs", seq: 1, at: 1, total: 1, upsert: [{ pid: 1 }] }, /bad procs frame/],
      [{ type: "mystery" }, /bad mystery frame/],
    ];
    for (const [frame, reason] of cases) {
      const bad = await agent(await server.agentToken(`bad-${String(reason)}`), `bad${cases.findIndex((c) => c[1] === reason)}@host`);
      await bad.hello();
      bad.send(frame);
      const closed = await bad.closed;
      expect(closed.code).toBe(4400);
      expect(closed.reason).toMatch(reason);
    }
    const beforeHello = await agent(await server.agentToken("early"), "early@host");
    beforeHello.send({ type: "procs", seq: 1, at: 1, total: 0 });
    expect((await beforeHello.closed).code).toBe(4400);
    // The good agent still works: its data is accepted and served.
    good.send({
      type: "procs",
      seq: 1,
      at: Date.now(),
      reset: true,
      total: 1,
      upsert: [
        {
          pid: "<0.1.0>",
          name: "init",
          initialCall: "otp_ring0:start/2",
          currentFunction: "init:loop/1",
          mailbox: 3,
          memory: 100,
          reductions: 5,
          status: "waiting",
          links: [],
          parent: null,
          ancestors: [],
        },
      ],
    });
    const rows = await waitFor("good agent's process", async () => {
      const r = await server.cli(["procs", "good@host", "--json"]);
      const out = r.code === 0 ? (JSON.parse(r.stdout) as { pid: string; mailbox: number }[]) : [];
      return out.length === 1 ? out : null;
    });
    expect(rows[0]).toMatchObject({ pid: "<0.1.0>", mailbox: 3 });
    expect(good.ws.readyState).toBe(good.ws.OPEN);
    good.close();
  });

  it("closes an oversized frame with 4400", async () => {
    const a = await agent(await server.agentToken("big"), "big@host");
    await a.hello();
    a.send({ type: "tree", at: 1, apps: [], pad: "x".repeat(1024 * 1024 + 10) });
    const closed = await a.closed;
    expect(closed.code).toBe(4400);
    expect(closed.reason).toMatch(/exceeds/);
  });

  it("disconnects an agent at once when its token is revoked, with 4401", async () => {
    const token = await server.agentToken("to-revoke");
    const id = /^bdagt_([a-z2-9]{10})_/.exec(token)?.[1] as string;
    const a = await agent(token, "revoked@host");
    await a.hello();
    const r = await server.cli(["agent-token", "revoke", id]);
    expect(r.code, r.stderr).toBe(0);
    const closed = await a.closed;
    expect(closed.code).toBe(4401);
    const again = await connectRaw(server.agentUrl, token, "revoked@host");
    expect(isRefusal(again) && again.status).toBe(401);
    expect(isRefusal(again) && again.body).toMatch(/revoked/);
  });

  it("shows a disconnected node as such, and the same identity when it comes back", async () => {
    const token = await server.agentToken("flappy");
    const a = await agent(token, "flappy@host");
    await a.hello();
    await waitFor("connected", async () => (await nodesJson()).find((n) => n.name === "flappy@host" && n.connected));
    a.ws.terminate();
    await waitFor("disconnected", async () => (await nodesJson()).find((n) => n.name === "flappy@host" && !n.connected));
    const b = await agent(token, "flappy@host");
    await b.hello();
    await waitFor("reconnected", async () => (await nodesJson()).find((n) => n.name === "flappy@host" && n.connected));
    expect((await nodesJson()).filter((n) => n.name === "flappy@host")).toHaveLength(1);
    b.close();
  });

  it("stores a burst larger than its queue exactly once, with backpressure instead of drops", async () => {
    const a = await agent(await server.agentToken("burst"), "burst@host");
    await a.hello();
    const N = 30_000;
    let acked = 0;
    a.ws.on("message", (d) => {
      const f = JSON.parse(d.toString()) as { type: string; eventSeq?: number };
      if (f.type === "ack") acked = Math.max(acked, f.eventSeq ?? 0);
    });
    const boot = "b0075eed".repeat(4);
    for (let seq = 1; seq <= N; seq += 1) {
      a.send({ type: "event", seq, bootId: boot, at: Date.now(), kind: "crash_report", context: "crash", reason: { text: `r${seq}`, truncated: false } });
    }
    await waitFor("every event acknowledged", () => acked === N, 120_000, 200);
    const r = await server.cli(["events", "burst@host", "--json", "--limit", "1"]);
    expect((JSON.parse(r.stdout) as { seq: number }[])[0].seq).toBe(N);
    const admin = (await import("../support/trpc-clients")).httpClient(server.url, { token: server.apiToken });
    let count = 0;
    let before: string | undefined;
    for (;;) {
      const page = await admin.events.list.query({ node: "burst@host", limit: 1000, before });
      count += page.events.length;
      if (!page.nextBefore) break;
      before = page.nextBefore;
    }
    expect(count).toBe(N);
    a.close();
  }, 180_000);
});
