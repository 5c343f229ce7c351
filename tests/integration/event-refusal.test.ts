/**
 * An event the server's schema refuses is never dropped silently (a defect
 * found in session 4: `notify/1` over rpc with a `reason` that is not a
 * printed term closed the socket with 4400; the agent replayed the same frame
 * after every reconnect, so it and every later event stayed unacked, and the
 * server logged nothing). Real rel_test node, real server (PGlite).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BeamNode } from "../../tools/beam/nodes";
import { startAgentNode, stopServerAndNodes, waitConnected } from "../support/beam-node";
import { waitFor } from "../support/ports";
import { parseExposition } from "../support/prometheus-text";
import { connectRaw, isRefusal } from "../support/raw-agent";
import { startServer, type TestServer } from "../support/server";
import { httpClient } from "../support/trpc-clients";

let server: TestServer;
let node: BeamNode;

beforeAll(async () => {
  server = await startServer();
  ({ node } = await startAgentNode(server));
  await waitConnected(server, node.name);
}, 180_000);
afterAll(async () => stopServerAndNodes(server));

type Row = { seq: number; kind: string; context: string | null; reason: string | null };
type Stats = { unackedSent: number; acked: number; lastSeq: number; reconnects: number };

async function eventsStats(): Promise<Stats> {
  const [events, conn] = await Promise.all([node.rpcJson<Stats>("beamdeck_agent_events:stats()"), node.rpcJson<{ reconnects: number }>("beamdeck_agent_conn:stats()")]);
  return { ...events, reconnects: conn.reconnects };
}

async function stored(): Promise<Row[]> {
  const r = await server.cli(["events", node.name, "--json", "--limit", "100"], {}, { timeoutMs: 20_000 });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Row[]).filter((e) => "seq" in e);
}

describe("a refused event", () => {
  it("is stored in its place as a refused gap, counted, logged and paged; the ack moves on and later events arrive", async () => {
    const before = await eventsStats();
    // A plain binary where the protocol wants a printed term ({text, truncated}).
    await node.rpc(`beamdeck_agent_events:notify(#{kind => <<"probe_bad">>, reason => <<"plain text">>})`);
    await node.rpc(`beamdeck_agent_events:notify(#{kind => <<"probe_good">>})`);
    const badSeq = before.lastSeq + 1;

    const after = await waitFor(
      "both acked",
      async () => {
        const s = await eventsStats();
        return s.acked >= badSeq + 1 && s.unackedSent === 0 ? s : null;
      },
      20_000,
      300,
    );
    expect(after.reconnects).toBe(before.reconnects);

    const rows = await waitFor(
      "both stored",
      async () => {
        const r = await stored();
        return r.some((e) => e.seq === badSeq + 1) ? r : null;
      },
      10_000,
      300,
    );
    const bad = rows.find((e) => e.seq === badSeq);
    expect(bad?.kind).toBe("event_gap");
    expect(bad?.context).toBe("refused");
    expect(bad?.reason).toContain(`event seq ${badSeq} (kind probe_bad)`);
    expect(bad?.reason).toContain("reason");
    expect(rows.find((e) => e.seq === badSeq + 1)?.kind).toBe("probe_good");

    expect(server.log()).toMatch(new RegExp(`${node.name}: refused a "event" frame \\(1 on this socket\\): "bad event frame: reason`));
    const m = parseExposition(await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiToken}` }, signal: AbortSignal.timeout(20_000) })).text());
    expect(m.value("beamdeck_agent_frames_refused_total", { node: node.name, type: "event" })).toBe(1);

    const api = httpClient(server.url, { token: server.apiToken });
    const alert = await waitFor("the event_gap alert", async () => (await api.alerts.list.query({ status: "open", node: node.name })).find((a) => a.kind === "event_gap") ?? null, 15_000, 300);
    expect(alert.title).toContain("refused by the server");
  });

  it("still closes the socket on a frame that is not an event (no replay follows it), and logs it", async () => {
    const before = await eventsStats();
    // A procs frame the schema refuses, sent through the conn as the sampler would.
    await node.rpc(`beamdeck_agent_conn:send(#{type => <<"procs">>, seq => 1, at => <<"not a time">>, total => 0})`);
    await waitFor("reconnected", async () => (await eventsStats()).reconnects > before.reconnects, 20_000, 300);
    expect(server.log()).toMatch(new RegExp(`${node.name}: refused a "procs" frame \\(\\d+ on this socket\\): "bad procs frame: at`));
    await waitConnected(server, node.name);
  });

  it("an agent token choosing the refused frames' type adds no /metrics label and no log line of its own", async () => {
    // A protocol-level client (no BEAM behaviour is tested here): each refused non-event frame closes the socket, so each type is a reconnect.
    const token = await server.agentToken("refusal-forger");
    const forged = "forged@host";
    for (let i = 0; i < 5; i++) {
      const a = await connectRaw(server.agentUrl, token, forged);
      if (isRefusal(a)) throw new Error(`connection ${i} refused: ${a.status} ${a.body}`);
      a.send({ type: `x${i}\n[beamdeck] admin` });
      expect((await a.closed).code).toBe(4400);
    }
    const m = parseExposition(await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiToken}` }, signal: AbortSignal.timeout(20_000) })).text());
    expect(m.value("beamdeck_agent_frames_refused_total", { node: forged, type: "other" })).toBe(5);
    expect(m.find("beamdeck_agent_frames_refused_total", { node: forged }).map((x) => x.labels.type)).toEqual(["other"]);
    expect(server.log()).not.toMatch(/^\[beamdeck\] admin/m);
    expect(server.log()).toMatch(new RegExp(`${forged}: refused a "other" frame \\(1 on this socket\\)`));
  });
});
