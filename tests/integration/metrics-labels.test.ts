/**
 * Labels of /metrics an agent token chooses the text of: a node's event
 * kinds (notify/1 takes any). The real server; the agent is a protocol-level
 * client, since what is tested is what the server does with frames a
 * node's token may send, not BEAM behaviour.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_EVENT_KINDS_PER_NODE } from "../../server/gateway/metrics";
import { waitFor } from "../support/ports";
import { parseExposition } from "../support/prometheus-text";
import { connectRaw, helloFrame, isRefusal, type RawAgent } from "../support/raw-agent";
import { startServer, type TestServer } from "../support/server";

const NODE = "kinds@host";
const KINDS = 100;

let server: TestServer;
let agent: RawAgent;

beforeAll(async () => {
  server = await startServer();
  const a = await connectRaw(server.agentUrl, await server.agentToken("kind sprayer"), NODE);
  if (isRefusal(a)) throw new Error(`the agent connection was refused: ${a.status} ${a.body}`);
  agent = a;
  await agent.hello();
}, 240_000);

afterAll(async () => {
  agent?.close();
  await server?.stop();
});

describe("event kinds in /metrics", () => {
  it('a node\'s kinds beyond the bound count as one "other" label', async () => {
    const bootId = helloFrame(NODE).bootId;
    for (let seq = 1; seq <= KINDS; seq++) agent.send({ type: "event", seq, bootId, at: Date.now(), kind: `sprayed_kind_${seq}` });
    await waitFor("all acked", async () => (agent.received.some((f) => f.type === "ack" && f.eventSeq === KINDS) ? true : null), 30_000, 200);
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiToken}` }, signal: AbortSignal.timeout(20_000) });
    const samples = parseExposition(await res.text()).find("beamdeck_events_stored_total", { node: NODE });
    expect(samples).toHaveLength(MAX_EVENT_KINDS_PER_NODE + 1);
    expect(samples.find((x) => x.labels.kind === "other")?.value).toBe(KINDS - MAX_EVENT_KINDS_PER_NODE);
    expect(samples.reduce((n, x) => n + x.value, 0)).toBe(KINDS);
    expect(samples.find((x) => x.labels.kind === "sprayed_kind_1")?.value).toBe(1);
  });
});
