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

/** The Prometheus text format, parsed strictly enough to fail on a malformed line. */
function parseMetrics(text: string) {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      if (m[1] === "TYPE") types.set(m[2], m[3]);
      else helps.add(m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+]+|\+Inf|NaN)$/.exec(line);
    if (!m) throw new Error(`not a metric line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  for (const s of samples) {
    const family = s.name.replace(/_(bucket|sum|count)$/, "");
    if (!types.has(s.name) && !types.has(family)) throw new Error(`no TYPE for ${s.name}`);
    if (!helps.has(s.name) && !helps.has(family)) throw new Error(`no HELP for ${s.name}`);
  }
  const one = (name: string, labels: Record<string, string> = {}) => samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return { types, samples, one };
}

describe("GET /metrics", () => {
  const scrape = (auth?: string) => fetch(`${server.url}/metrics`, { headers: auth ? { authorization: `Bearer ${auth}` } : {} });

  it("refuses a scrape without a token, and takes a viewer's token", async () => {
    const anon = await scrape();
    expect(anon.status).toBe(401);
    expect(await anon.text()).toMatch(/token/);
    expect((await scrape("bdapi_nope_nope")).status).toBe(401);
    const admin = httpClient(server.url, { token: server.apiToken });
    const viewer = await admin.tokens.apiCreate.mutate({ label: "prometheus", role: "viewer" });
    const r = await scrape(viewer.token);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("reports the node as the node reports itself, and counts its events", async () => {
    // A supervisor report the test causes: the rel_test acceptor killed and restarted.
    await node.rpc(`[{_, P, _, _}] = supervisor:which_children('Elixir.RelTest.Supervisor'), exit(P, kill), ok`);
    const m = await waitFor(
      "the supervisor report counted in /metrics",
      async () => {
        const parsed = parseMetrics(await (await scrape(server.apiToken)).text());
        return parsed.one("beamdeck_events_stored_total", { node: node.name, kind: "supervisor_report" })[0]?.value ? parsed : null;
      },
      20_000,
      500,
    );
    expect(m.one("beamdeck_node_connected", { node: node.name })[0]?.value).toBe(1);
    expect(m.one("beamdeck_agents_connected")[0]?.value).toBeGreaterThanOrEqual(1);
    const rel = await node.rpcJson<[string, string]>(`[{N, V, _, _} | _] = [R || R = {_, _, _, permanent} <- release_handler:which_releases()], [list_to_binary(N), list_to_binary(V)]`);
    expect(m.one("beamdeck_node_info", { node: node.name })[0]?.labels).toMatchObject({ otp: "25", release: rel[0], release_vsn: rel[1] });
    const procs = Number(await node.rpc("erlang:system_info(process_count)"));
    expect(Math.abs((m.one("beamdeck_node_processes", { node: node.name })[0]?.value ?? 0) - procs)).toBeLessThan(40);
    expect(m.one("beamdeck_node_system_limit", { node: node.name, what: "processes" })[0]?.value).toBe(Number(await node.rpc("erlang:system_info(process_limit)")));
    expect(m.one("beamdeck_node_memory_bytes", { node: node.name, kind: "total" })[0]?.value).toBeGreaterThan(1_000_000);
    expect(m.types.get("beamdeck_event_ingest_lag_seconds")).toBe("histogram");
    const buckets = m.one("beamdeck_event_ingest_lag_seconds_bucket").map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    expect(buckets.at(-1)).toBe(m.one("beamdeck_event_ingest_lag_seconds_count")[0]?.value);
    expect(m.one("beamdeck_agent_frames_received_total", { type: "procs" })[0]?.value).toBeGreaterThan(0);
    expect(m.one("beamdeck_webhook_deliveries", { status: "failed" })).toHaveLength(1);
  });
});
