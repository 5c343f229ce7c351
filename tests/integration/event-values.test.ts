/**
 * Values in event text by role (T-int, item 3): with the agent's get_state
 * on, a crash report holds the crashed process's dictionary and its exit
 * reason's data. A real rel_test node crashes a supervised child whose
 * dictionary and reason carry markers; the real server shows them to
 * operators and admins only (processes.valuesRole, default operator) — in
 * tRPC event reads, the live tail, the reason filter and `beamdeck events` —
 * and to a webhook only when its eventValues setting is on.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, stopServerAndNodes, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient, wsClient } from "../support/trpc-clients";

const DICT_SECRET = "dict-s3cret-marker";
const REASON_SECRET = "reason-s3cret-marker";

let server: TestServer;
let node: BeamNode;
let receiver: http.Server;
const received = new Map<string, string[]>();
let viewer: string;
let operator: string;
const tailSeen: string[] = [];
let tail: ReturnType<typeof wsClient>;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.set(req.url ?? "", [...(received.get(req.url ?? "") ?? []), body]);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  server = await startServer();
  const admin = httpClient(server.url, { token: server.apiToken });
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  await admin.alerts.setWebhookSettings.mutate({ allowPrivateTargets: true });
  await admin.alerts.addWebhook.mutate({ url: `${base}/default` });
  const withValues = await admin.alerts.addWebhook.mutate({ url: `${base}/values`, eventValues: true });
  expect(withValues.eventValues).toBe(true);
  // Any abnormal exit pages, so the crash below raises an alert (and webhook deliveries).
  await admin.alerts.updateRule.mutate({ kind: "child_terminated", enabled: true, params: { anyAbnormal: true } });
  viewer = (await admin.tokens.apiCreate.mutate({ label: "ev-viewer", role: "viewer" })).token;
  operator = (await admin.tokens.apiCreate.mutate({ label: "ev-operator", role: "operator" })).token;
  ({ node } = await startAgentNode(server));
  await waitConnected(server, node.name);
  tail = wsClient(server.url, { token: viewer });
  tail.trpc.events.onEvents.subscribe({ node: node.name }, { onData: (events) => tailSeen.push(JSON.stringify(events)) });

  await node.rpc("application:set_env(beamdeck_agent, get_state, true)");
  expect(await crashSecretChild()).toMatch(/^<\d+\.\d+\.\d+>$/);
}, 180_000);

let crashes = 0;
/** A supervised child with a secret in its dictionary, crashing on a badmatch whose value is secret. */
function crashSecretChild(): Promise<string> {
  crashes += 1;
  return node.rpc(
    `{ok, P} = supervisor:start_child('Elixir.RelTest.Supervisor', #{id => ${crashes === 1 ? "bd_secret_child" : `bd_secret_child_${crashes}`}, restart => temporary, ` +
      `start => {proc_lib, start_link, [erlang, apply, [fun() -> proc_lib:init_ack({ok, self()}), put(bd_secret_key, <<"${DICT_SECRET}">>), ` +
      `receive go -> erlang:error({badmatch, <<"${REASON_SECRET}">>}) end end, []]]}}), P ! go, P`,
  );
}

afterAll(async () => {
  tail?.close();
  receiver?.close();
  await stopServerAndNodes(server);
});

type Row = { id: string; kind: string; context: string | null; reason: string | null };
const api = (token: string) => httpClient(server.url, { token });
const crashOf = async (token: string) => {
  const { events } = await api(token).events.list.query({ node: node.name, kind: "crash_report" });
  return events[0] as Row | undefined;
};

describe("crash report values by role", () => {
  it("the events arrive, with the values in them as the node sent them", async () => {
    const crash = await waitFor("the crash report", () => crashOf(server.apiToken), 20_000, 300);
    expect(crash.reason).toContain(REASON_SECRET);
    await waitFor("the child_terminated report", async () => (await api(server.apiToken).events.list.query({ node: node.name, context: "child_terminated" })).events[0] ?? null, 20_000, 300);
  });

  it("a viewer reads them without values: reason tag, class and frames kept (list, detail)", async () => {
    const crash = await crashOf(viewer);
    expect(crash?.reason).toBe("{badmatch,...}");
    const detail = await api(viewer).events.get.query({ id: crash?.id ?? "" });
    expect(JSON.stringify(detail)).not.toMatch(/s3cret/);
    expect(detail.valuesHidden).toBe("below the operator role");
    const raw = detail.raw as Record<string, unknown>;
    expect(raw.class).toBe("error");
    expect(raw.frames).toEqual(expect.arrayContaining([expect.stringMatching(/^erl_eval:/)]));
    expect((raw.report as { text: string }).text).toMatch(/^\(hidden below the operator role/);
    const sup = (await api(viewer).events.list.query({ node: node.name, context: "child_terminated" })).events[0];
    expect(sup?.reason).toBe("{{badmatch,...},...}");
  });

  it("an operator and an admin read them with values", async () => {
    for (const t of [operator, server.apiToken]) {
      const crash = await crashOf(t);
      const detail = await api(t).events.get.query({ id: crash?.id ?? "" });
      expect(detail.valuesHidden).toBeNull();
      expect(JSON.stringify(detail.raw)).toContain(DICT_SECRET);
      expect(crash?.reason).toContain(REASON_SECRET);
    }
  });

  it("the reason filter finds values only for those who see them", async () => {
    expect((await api(viewer).events.list.query({ node: node.name, reason: "s3cret" })).events).toEqual([]);
    expect((await api(operator).events.list.query({ node: node.name, reason: "s3cret" })).events.length).toBeGreaterThanOrEqual(2);
  });

  it("a viewer's reason filter is no oracle: its paging says the same whether the guess is in a hidden value or not", async () => {
    // Two events hold the marker (the crash and the supervisor report): a filter run in the database would page on to the second.
    const probe = (reason: string) => api(viewer).events.list.query({ node: node.name, reason, limit: 1 });
    const [hit, miss] = await Promise.all([probe(REASON_SECRET), probe("no-such-text-in-any-event")]);
    expect(hit.events).toEqual([]);
    expect(hit.nextBefore).toBe(miss.nextBefore);
    const unfiltered = await api(viewer).events.list.query({ node: node.name, limit: 1 });
    expect(hit.nextBefore).toBe(unfiltered.nextBefore);
  });

  it("the CLI follows the caller's role", async () => {
    const asViewer = await server.cli(["events", node.name, "--json"], { BEAMDECK_API_TOKEN: viewer });
    expect(asViewer.code, asViewer.stderr).toBe(0);
    expect(asViewer.stdout).toContain("{badmatch,...}");
    expect(asViewer.stdout).not.toMatch(/s3cret/);
    const asOperator = await server.cli(["events", node.name, "--json"], { BEAMDECK_API_TOKEN: operator });
    expect(asOperator.stdout).toContain(REASON_SECRET);
  });

  it("the live tail to a viewer carries no values", async () => {
    // The first crash may have come before the subscription was live on the server (it starts with the next batch):
    // crash another child every few seconds until one reaches the tail.
    let lastCrash = Date.now();
    const seen = await waitFor(
      "the tail",
      async () => {
        if (tailSeen.some((t) => t.includes("crash_report"))) return tailSeen.join("\n");
        if (Date.now() - lastCrash > 3000) {
          lastCrash = Date.now();
          await crashSecretChild();
        }
        return null;
      },
      30_000,
      200,
    );
    expect(seen).toContain("{badmatch,...}");
    expect(seen).not.toMatch(/s3cret/);
  });

  it("alerts carry the reason's tag; a webhook gets the event's values only when its eventValues is on", async () => {
    const alerts = await api(viewer).alerts.list.query({ status: "all", node: node.name });
    const alert = alerts.find((a) => a.kind === "child_terminated" && a.title.includes("child bd_secret_child terminated"));
    expect(alert?.title).toBe("Elixir.RelTest.Supervisor: child bd_secret_child terminated ({{badmatch,...},...})");
    expect(JSON.stringify(alerts)).not.toMatch(/s3cret/);
    const plain = await waitFor("the default webhook", () => received.get("/default")?.find((b) => b.includes("bd_secret_child")) ?? null, 20_000, 200);
    const full = await waitFor("the eventValues webhook", () => received.get("/values")?.find((b) => b.includes("bd_secret_child")) ?? null, 20_000, 200);
    expect(plain).not.toMatch(/s3cret/);
    expect(JSON.parse(plain).event).toMatchObject({ kind: "supervisor_report", reason: { text: "{{badmatch,...},...}" }, valuesHidden: "for this webhook (its eventValues setting is off)" });
    expect(JSON.parse(full).event.reason.text).toContain(REASON_SECRET);
  });

  it("lowering the values role to viewer shows the viewer the values", async () => {
    const admin = api(server.apiToken);
    await admin.procs.setValuesRole.mutate({ least: "viewer" });
    try {
      expect((await crashOf(viewer))?.reason).toContain(REASON_SECRET);
    } finally {
      await admin.procs.setValuesRole.mutate({ least: "operator" });
    }
    expect((await crashOf(viewer))?.reason).toBe("{badmatch,...}");
  });
});
