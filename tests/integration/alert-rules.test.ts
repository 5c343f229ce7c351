/**
 * Each alert rule on a real node, with thresholds set through the API:
 * mailbox over threshold (and auto-resolve), supervisor giving up, node
 * down (and auto-resolve), a kill during an upgrade that was not predicted
 * (a prediction miss), and webhook retries against a flaky receiver.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAll, type BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

let server: TestServer;
let node: BeamNode;
let api: ReturnType<typeof httpClient>;
let receiver: http.Server;
const hits: { status: number; body: string }[] = [];

beforeAll(async () => {
  // Fails twice, then accepts: the delivery must be retried until it lands.
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const status = hits.length < 2 ? 500 : 204;
      hits.push({ status, body });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  server = await startServer({ env: { BEAMDECK_WEBHOOK_BASE_DELAY_MS: "200" } });
  api = httpClient(server.url, { token: server.apiToken });
  // The receiver is on loopback: a private target, refused unless an admin allows it.
  await api.alerts.setWebhookSettings.mutate({ allowPrivateTargets: true });
  await api.alerts.addWebhook.mutate({ url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/flaky` });
  await api.alerts.updateRule.mutate({ kind: "mailbox", enabled: true, params: { threshold: 100, forSeconds: 2 } });
  await api.alerts.updateRule.mutate({ kind: "node_down", enabled: true, params: { forSeconds: 2 } });
  ({ node } = await startAgentNode(server));
  await waitConnected(server, node.name);
});
afterAll(async () => {
  await stopAll();
  await server?.stop();
  receiver?.close();
});

type Alert = { id: string; kind: string; node: string; status: string; count: number; title: string; detail: Record<string, unknown>; deliveries: { status: string; attempts: number }[] };
const alerts = async (status: "active" | "all" = "all") => (await api.alerts.list.query({ status, node: node.name })) as unknown as Alert[];

describe("alert rules on a real node", () => {
  it("mailbox above the threshold for the time given pages once, delivered after retries, and resolves when it drains", async () => {
    const pid = await node.rpc(`P = spawn(fun() -> receive go -> ok end, timer:sleep(infinity) end), [P ! {m, I} || I <- lists:seq(1, 500)], register(bd_slow, P), P`);
    const a = await waitFor("the mailbox alert", async () => (await alerts()).find((x) => x.kind === "mailbox") ?? null, 20_000, 500);
    expect(a.detail).toMatchObject({ pid, mailbox: 500, threshold: 100 });
    expect(a.status).toBe("open");
    // The flaky receiver refused twice; the third attempt landed.
    const delivered = await waitFor("the delivery", async () => (await alerts()).find((x) => x.id === a.id && x.deliveries[0]?.status === "delivered") ?? null, 20_000, 500);
    expect(delivered.deliveries[0].attempts).toBe(3);
    expect(hits.slice(0, 3).map((h) => h.status)).toEqual([500, 500, 204]);
    expect(JSON.parse(hits[2].body).alert.id).toBe(a.id);
    // Drain it: the alert resolves by itself.
    await node.rpc(`exit(whereis(bd_slow), kill)`);
    const resolved = await waitFor("auto-resolve", async () => (await alerts()).find((x) => x.id === a.id && x.status === "resolved") ?? null, 20_000, 500);
    expect(resolved.status).toBe("resolved");
    expect((await alerts()).filter((x) => x.kind === "mailbox")).toHaveLength(1);
  });

  it("a supervisor reaching its restart intensity pages", async () => {
    // A supervisor with max_restarts 1, owned by a holder process on the node.
    await node.rpc(
      `spawn(fun() -> process_flag(trap_exit, true), {ok, S} = 'Elixir.Supervisor':start_link([#{id => bd_w, start => {'Elixir.Task', start_link, [fun() -> timer:sleep(infinity) end]}}], [{strategy, one_for_one}, {max_restarts, 1}, {max_seconds, 60}, {name, bd_fragile_sup}]), receive {'EXIT', S, _} -> ok end end), timer:sleep(200), ok`,
    );
    for (let i = 0; i < 3; i += 1) {
      await node.rpc(`case supervisor:which_children(bd_fragile_sup) of [{_, P, _, _}] when is_pid(P) -> exit(P, kill); _ -> ok end, timer:sleep(100), ok`).catch(() => "");
    }
    expect(await node.rpc(`whereis(bd_fragile_sup)`)).toBe("undefined");
    const a = await waitFor("the intensity alert", async () => (await alerts()).find((x) => x.kind === "max_restart_intensity") ?? null, 20_000, 500);
    expect(a.title).toMatch(/bd_fragile_sup gave up/);
  });

  it("a kill during an upgrade that the plan did not predict is a prediction miss", async () => {
    expect((await server.cli(["upgrade", "unpack", node.name, "0.1.1"])).code).toBe(0);
    // Soft post-purge: nothing is predicted to die.
    const install = await server.cli(["upgrade", "install", node.name, "0.1.1", "--purge", "TestListener=soft", "--yes"]);
    expect(install.code, install.stderr).toBe(0);
    const acc = await node.rpc(`[P] = [P || {'Elixir.Task', P, worker, _} <- supervisor:which_children('Elixir.RelTest.Supervisor')], P`);
    await node.rpc(`exit(list_to_pid("${acc}"), kill)`);
    const a = await waitFor("the miss", async () => (await alerts()).find((x) => x.kind === "child_terminated" && x.detail.predictionMiss) ?? null, 20_000, 500);
    expect(a.title).toMatch(/not predicted by upgrade/);
    expect(a.detail).toMatchObject({ offenderPid: acc, predictionMiss: true });
    const ev = (JSON.parse((await server.cli(["events", node.name, "--json"])).stdout) as { offender: { pid: string } | null; expected: boolean }[]).find((e) => e.offender?.pid === acc);
    expect(ev?.expected).toBe(false);
  });

  it("a node down longer than the rule's time pages, and resolves when it comes back", async () => {
    await server.cli(["agent-token", "list"]);
    await node.rpc(`application:stop(beamdeck_agent)`);
    const a = await waitFor("the node_down alert", async () => (await alerts()).find((x) => x.kind === "node_down" && x.status === "open") ?? null, 20_000, 500);
    expect(a.title).toMatch(/disconnected for over 2 s/);
    await node.rpc(`application:start(beamdeck_agent)`);
    await waitConnected(server, node.name);
    await waitFor("auto-resolve", async () => (await alerts()).find((x) => x.id === a.id && x.status === "resolved") ?? null, 20_000, 500);
    // Still down only once: one alert for the outage.
    expect((await alerts()).filter((x) => x.kind === "node_down")).toHaveLength(1);
  });
});
