/**
 * Supervisor reports from a real node to the event log, one alert and one
 * signed webhook delivery; and exactly-once delivery across a server crash.
 */
import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

let server: TestServer;
let node: BeamNode;
let receiver: http.Server;
const received: Received[] = [];
const SECRET = "a-webhook-secret-of-some-length";

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  server = await startServer();
  const admin = httpClient(server.url, { token: server.apiToken });
  // The receiver is on loopback: a private target, refused unless an admin allows it.
  await admin.alerts.setWebhookSettings.mutate({ allowPrivateTargets: true });
  await admin.alerts.addWebhook.mutate({ url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: SECRET });
  ({ node } = await startAgentNode(server));
  await waitConnected(server, node.name);
});

afterAll(async () => {
  await stopAll();
  await server?.stop();
  receiver?.close();
});

type EventJson = {
  seq: number;
  node: string;
  at: string;
  kind: string;
  context: string | null;
  reason: string | null;
  supervisor: string | null;
  offender: { id: string | null; pid: string | null } | null;
  expected: boolean;
};

async function eventsOf(name: string, extra: string[] = []): Promise<EventJson[]> {
  const r = await server.cli(["events", name, "--json", "--limit", "1000", ...extra]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

describe("supervisor reports to alerts", () => {
  it("a killed acceptor gives one child_terminated/killed event, one alert and one signed webhook", async () => {
    const acceptor = await node.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children('Elixir.RelTest.Supervisor')], P`);
    expect(acceptor).toMatch(/^<\d+\.\d+\.\d+>$/);
    await node.rpc(`exit(list_to_pid("${acceptor}"), kill)`);
    const ev = await waitFor("the child_terminated event", async () => (await eventsOf(node.name)).find((e) => e.context === "child_terminated" && e.offender?.pid === acceptor), 15_000, 300);
    expect(ev).toMatchObject({ kind: "supervisor_report", reason: "killed", supervisor: "Elixir.RelTest.Supervisor", offender: { id: "Elixir.Task", pid: acceptor }, expected: false });
    expect(ev.seq).toBeGreaterThan(0);
    expect(Number.isNaN(Date.parse(ev.at))).toBe(false);
    // The supervisor restarted the acceptor: a new pid, checked on the node itself.
    const again = await node.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children('Elixir.RelTest.Supervisor')], P`);
    expect(again).not.toBe(acceptor);

    const alerts = await waitFor("the alert", async () => {
      const r = await server.cli(["alerts", "--json"]);
      const rows = JSON.parse(r.stdout) as { id: string; kind: string; node: string; count: number; title: string }[];
      return rows.filter((a) => a.kind === "child_terminated" && a.node === node.name).length ? rows : null;
    });
    const mine = alerts.filter((a) => a.kind === "child_terminated" && a.node === node.name);
    expect(mine).toHaveLength(1);
    expect(mine[0].title).toMatch(/Elixir\.RelTest\.Supervisor: child Elixir\.Task terminated \(killed\)/);

    const hook = await waitFor("the webhook delivery", () => received.find((r) => r.body.includes(mine[0].id)));
    const ts = hook.headers["x-beamdeck-timestamp"] as string;
    const expectedSig = `sha256=${crypto.createHmac("sha256", SECRET).update(`${ts}.${hook.body}`).digest("hex")}`;
    expect(hook.headers["x-beamdeck-signature"]).toBe(expectedSig);
    const payload = JSON.parse(hook.body) as { text: string; alert: { kind: string; node: string } };
    expect(payload.text).toMatch(/^\[beamdeck\] .*terminated \(killed\)/);
    expect(payload.alert).toMatchObject({ kind: "child_terminated", node: node.name });
    await new Promise((r) => setTimeout(r, 1500));
    expect(received.filter((r) => r.body.includes(mine[0].id))).toHaveLength(1);

    const ack = await server.cli(["alerts", "ack", mine[0].id]);
    expect(ack.code, ack.stderr).toBe(0);
    expect((await server.cli(["alerts", "ack", mine[0].id])).stderr).toMatch(/already acknowledged/);
  });

  it("every report arrives exactly once across a server crash and restart", async () => {
    const N = 150;
    // The marker is in the exit reason, which leaves the node in full only with
    // get_state on (issue 10, item 15); read per report, so no restart needed.
    await node.rpc(`application:set_env(beamdeck_agent, get_state, true)`);
    // Crash reports with a unique marker, one every 40 ms, produced on the node
    // while the server is killed and comes back.
    await node.rpc(`spawn(fun() -> [begin proc_lib:spawn(fun() -> exit({bd_exactly_once, I}) end), timer:sleep(40) end || I <- lists:seq(1, ${N})] end), ok`);
    await new Promise((r) => setTimeout(r, 1500));
    await server.kill();
    await new Promise((r) => setTimeout(r, 2500));
    await server.restart();
    const marked = await waitFor(
      `${N} crash reports`,
      async () => {
        const evs = (await eventsOf(node.name)).filter((e) => e.kind === "crash_report" && (e.reason ?? "").includes("bd_exactly_once"));
        return evs.length >= N ? evs : null;
      },
      40_000,
      1000,
    );
    const ids = marked.map((e) => Number(/bd_exactly_once,(\d+)/.exec(e.reason ?? "")?.[1]));
    expect(new Set(ids).size).toBe(N);
    expect(marked).toHaveLength(N);
    expect([...new Set(marked.map((e) => e.seq))]).toHaveLength(N);
  });
});
