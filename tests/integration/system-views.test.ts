/**
 * Observer's system views and the Prometheus endpoint end to end: a real
 * rel_test release with the agent, a real server, read through the CLI and
 * GET /metrics and checked against what the node itself says over
 * distributed Erlang.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BeamNode } from "../../tools/beam/nodes";
import type { EtsTables, PortList, SystemOverview } from "../../server/agents/system-views";
import { startServerAndNode, stopServerAndNodes } from "../support/beam-node";
import { waitFor } from "../support/ports";
import type { TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";
import { cliJson } from "../support/calls";
import { parseExposition } from "../support/prometheus-text";

let server: TestServer;
let node: BeamNode;
let listenPort: number;

beforeAll(async () => {
  ({ server, node, listenPort } = await startServerAndNode());
});
afterAll(() => stopServerAndNodes(server));

describe("system views", () => {
  it("the overview's limits, schedulers and counts are the node's own", async () => {
    const o = await waitFor("a first overview", () => cliJson<SystemOverview | null>(server, ["system", node.name]).catch(() => null), 20_000, 500);
    const truth = await node.rpcJson<Record<string, number>>(
      `#{process_limit => erlang:system_info(process_limit), port_limit => erlang:system_info(port_limit), atom_limit => erlang:system_info(atom_limit), ets_limit => erlang:system_info(ets_limit), schedulers => erlang:system_info(schedulers), process_count => erlang:system_info(process_count), total => erlang:memory(total)}`,
    );
    expect(o.counts.processes.limit).toBe(truth.process_limit);
    expect(o.counts.ports.limit).toBe(truth.port_limit);
    expect(o.counts.atoms.limit).toBe(truth.atom_limit);
    expect(o.counts.ets.limit).toBe(truth.ets_limit);
    expect(o.schedulers).toBe(truth.schedulers);
    expect(o.runQueues.length).toBeGreaterThanOrEqual(truth.schedulers);
    expect(Math.abs(o.counts.processes.count - truth.process_count)).toBeLessThan(40);
    // Memory moves a little between the two readings; the order of magnitude must hold.
    expect(o.memory.total).toBeGreaterThan(truth.total / 2);
    expect(o.memory.total).toBeLessThan(truth.total * 2);
    expect(o.memory.total).toBeGreaterThanOrEqual(o.memory.processes + o.memory.ets + o.memory.binary + o.memory.code);
  });

  it("scheduler utilisation over time shows a scheduler kept busy on the node", async () => {
    // One process spinning for 12 s keeps one normal scheduler busy (wall time, whatever the host's load).
    await node.rpc(`spawn(fun() -> T = erlang:monotonic_time(millisecond) + 12000, F = fun G() -> case erlang:monotonic_time(millisecond) < T of true -> G(); false -> ok end end, F() end), ok`);
    const busy = await waitFor(
      "an overview with a busy scheduler",
      async () => {
        const r = await cliJson<SystemOverview | null>(server, ["system", node.name]);
        const per = r?.schedulerUtilization?.perScheduler ?? [];
        return per.length && Math.max(...per) > 0.6 ? r : null;
      },
      25_000,
      1000,
    );
    expect(busy.schedulerUtilization?.total).toBeGreaterThan(0);
    // The history behind the chart: samples one interval apart, oldest first.
    const h = await httpClient(server.url, { token: server.apiToken }).system.overview.query({ node: node.name });
    expect(h.history.length).toBeGreaterThanOrEqual(2);
    const gaps = h.history.slice(1).map((s, i) => s.at - h.history[i].at);
    for (const g of gaps) expect(g).toBeGreaterThan(h.everyMs / 2);
    const text = await server.cli(["system", node.name]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/utilisation \d+\.\d %/);
  });

  it("lists an ETS table with the size, memory and owner the node reports", async () => {
    const owner = await node.rpc(
      `Self = self(), P = spawn(fun() -> T = ets:new(bd_sysview_tab, [named_table, public, ordered_set]), ets:insert(T, [{K, K} || K <- lists:seq(1, 10000)]), Self ! ready, receive stop -> ok end end), receive ready -> ok end, register(bd_sysview_owner, P), P`,
    );
    const truth = await node.rpcJson<{ size: number; memory: number }>(`#{size => ets:info(bd_sysview_tab, size), memory => ets:info(bd_sysview_tab, memory) * erlang:system_info(wordsize)}`);
    const r = await cliJson<EtsTables>(server, ["ets", node.name, "--sort", "size", "--limit", "1000"]);
    const row = r.tables.find((t) => t.name === "bd_sysview_tab");
    expect(row).toMatchObject({ size: 10000, memory: truth.memory, type: "ordered_set", protection: "public", named: true, owner, ownerName: "bd_sysview_owner" });
    expect(r.total).toBe(Number(await node.rpc("length(ets:all())")));
    const sizes = r.tables.map((t) => t.size);
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    const two = await cliJson<EtsTables>(server, ["ets", node.name, "--limit", "2"]);
    expect(two.tables).toHaveLength(2);
  });

  it("lists the TCP connection of a client with its peer and bytes", async () => {
    const client = net.connect(listenPort, "127.0.0.1");
    await new Promise<void>((resolve, reject) => client.once("connect", resolve).once("error", reject));
    const hello = new Promise<void>((resolve) => client.once("data", () => resolve()));
    client.write("ping\n");
    await hello;
    try {
      const peer = `127.0.0.1:${client.localPort}`;
      const row = await waitFor(
        "the accepted socket in the port list",
        async () => (await cliJson<PortList>(server, ["ports", node.name, "--limit", "1000"])).ports.find((p) => p.peer === peer),
        10_000,
        300,
      );
      expect(row).toMatchObject({ kind: "tcp", name: "tcp_inet", local: `127.0.0.1:${listenPort}` });
      expect(row.input).toBeGreaterThanOrEqual(5);
      expect(row.output).toBeGreaterThan(0);
      // The node agrees on who owns the socket.
      const owner = await node.rpc(`{connected, P} = erlang:port_info(list_to_port("${row.id}"), connected), P`);
      expect(row.owner).toBe(owner);
      const listener = (await cliJson<PortList>(server, ["ports", node.name, "--sort", "name", "--limit", "1000"])).ports.find(
        (p) => p.kind === "tcp" && p.local?.endsWith(`:${listenPort}`) && p.peer === null,
      );
      expect(listener).toBeDefined();
    } finally {
      client.destroy();
    }
  });

  it("bad arguments are usage errors that name what is expected", async () => {
    const sort = await server.cli(["ets", node.name, "--sort", "owner"]);
    expect(sort.code).toBe(2);
    expect(sort.stderr).toMatch(/--sort/);
    const limit = await server.cli(["ports", node.name, "--limit", "0"]);
    expect(limit.code).toBe(2);
    expect(limit.stderr).toMatch(/--limit/);
    const unknown = await server.cli(["system", "nobody@nowhere"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/nobody@nowhere/);
  });
});

describe("GET /metrics", () => {
  const scrape = (auth?: string) => fetch(`${server.url}/metrics`, { headers: auth ? { authorization: `Bearer ${auth}` } : {}, signal: AbortSignal.timeout(20_000) });
  const metrics = async () => parseExposition(await (await scrape(server.apiToken)).text());

  it("refuses a scrape without a token, with a wrong one or an agent's, and takes a viewer's API token", async () => {
    const anon = await scrape();
    expect(anon.status).toBe(401);
    expect(await anon.text()).toMatch(/token/);
    expect((await scrape("bdapi_nope_nope")).status).toBe(401);
    // An agent token opens /agent only.
    const agent = await scrape(await server.agentToken("metrics-agent"));
    expect(agent.status).toBe(401);
    expect(await agent.text()).not.toMatch(/beamdeck_/);
    const admin = httpClient(server.url, { token: server.apiToken });
    const viewer = await admin.tokens.apiCreate.mutate({ label: "prometheus", role: "viewer" });
    const r = await scrape(viewer.token);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    // The whole exposition reads under the strict parser.
    expect(parseExposition(await r.text()).samples.length).toBeGreaterThan(10);
  });

  it("reports the node as the node reports itself: connected, processes, top mailbox, release, system counts", async () => {
    // A mailbox the test fills and nobody reads: 700 messages, more than anything else on the node holds.
    await node.rpc(`P = spawn(fun() -> receive never_sent -> ok end end), register(bd_metrics_hog, P), [P ! {hog, I} || I <- lists:seq(1, 700)], ok`);
    const top = () => node.rpcJson<number>(`lists:max([N || P <- processes(), {message_queue_len, N} <- [process_info(P, message_queue_len)]])`);
    expect(await top()).toBe(700);
    const m = await waitFor(
      "the hog's mailbox in /metrics",
      async () => {
        const x = await metrics();
        return x.value("beamdeck_node_top_mailbox_messages", { node: node.name }) === 700 ? x : null;
      },
      30_000,
      500,
    );
    expect(m.value("beamdeck_node_connected", { node: node.name })).toBe(1);
    expect(m.value("beamdeck_agents_connected")).toBeGreaterThanOrEqual(1);
    const rel = await node.rpcJson<[string, string]>(`[{N, V, _, _} | _] = [R || R = {_, _, _, permanent} <- release_handler:which_releases()], [list_to_binary(N), list_to_binary(V)]`);
    expect(m.find("beamdeck_node_info", { node: node.name })[0]?.labels).toMatchObject({ otp: "25", release: rel[0], release_vsn: rel[1] });
    const procs = Number(await node.rpc("erlang:system_info(process_count)"));
    expect(Math.abs(m.value("beamdeck_node_processes", { node: node.name }) - procs)).toBeLessThan(40);
    expect(m.value("beamdeck_node_system_limit", { node: node.name, what: "processes" })).toBe(Number(await node.rpc("erlang:system_info(process_limit)")));
    expect(m.value("beamdeck_node_memory_bytes", { node: node.name, kind: "total" })).toBeGreaterThan(1_000_000);
    // No process has been left on old code here: the total is there, and 0 (daily-signals checks a real one).
    expect(m.value("beamdeck_node_old_code_processes", { node: node.name, module: "" })).toBe(
      await node.rpcJson<number>(`length([P || P <- processes(), M <- [element(1, C) || C <- code:all_loaded()], erlang:check_process_code(P, M)])`),
    );
    await node.rpc(`exit(whereis(bd_metrics_hog), kill), ok`);
  });

  it("counts events and alerts by kind as the server stored them, frames, ingest lag and webhook deliveries", async () => {
    // A supervisor report the test causes: the rel_test acceptor killed and restarted.
    await node.rpc(`[{_, P, _, _}] = supervisor:which_children('Elixir.RelTest.Supervisor'), exit(P, kill), ok`);
    const api = httpClient(server.url, { token: server.apiToken });
    const alert = await waitFor(
      "the child_terminated alert",
      async () => (await api.alerts.list.query({ status: "all" })).find((a) => a.kind === "child_terminated" && a.node === node.name) ?? null,
      30_000,
      500,
    );
    const m = await waitFor(
      "the supervisor report and its alert counted in /metrics",
      async () => {
        const x = await metrics();
        return x.find("beamdeck_events_stored_total", { node: node.name, kind: "supervisor_report" })[0]?.value && x.find("beamdeck_alerts", { node: node.name, kind: "child_terminated" }).length
          ? x
          : null;
      },
      20_000,
      500,
    );
    // Events by kind: what the server stored since it started (this server started with this test file).
    const stored = await api.events.list.query({ node: node.name, kind: "supervisor_report", limit: 1000 });
    expect(m.value("beamdeck_events_stored_total", { node: node.name, kind: "supervisor_report" })).toBe(stored.events.length);
    // Alerts by node, kind and status, as the alert list has them.
    const all = (await api.alerts.list.query({ status: "all", node: node.name, limit: 500 })).filter((a) => a.kind === "child_terminated");
    expect(m.value("beamdeck_alerts", { node: node.name, kind: "child_terminated", status: alert.status })).toBe(all.filter((a) => a.status === alert.status).length);
    expect(m.types.get("beamdeck_event_ingest_lag_seconds")).toBe("histogram");
    expect(m.value("beamdeck_event_ingest_lag_seconds_count")).toBeGreaterThanOrEqual(stored.events.length);
    expect(m.value("beamdeck_agent_frames_received_total", { type: "procs" })).toBeGreaterThan(0);
    // Deliveries by outcome, each outcome always present (this server has no webhook: all three are 0).
    expect(["pending", "delivered", "failed"].map((status) => m.value("beamdeck_webhook_deliveries", { status }))).toEqual([0, 0, 0]);
  });
});
