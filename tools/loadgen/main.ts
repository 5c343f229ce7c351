/**
 * `npx tsx tools/loadgen/main.ts --url ws://127.0.0.1:4000/agent,ws://127.0.0.1:4001/agent
 *   --agents 200 --procs 10000 --duration 60s --token …`
 *
 * Simulated nodes speaking the real agent protocol (tools/loadgen/agent.ts)
 * against loopback servers, for a bounded time; prints a line every 10 s and
 * a summary at the end (`--json FILE` also writes it as JSON). The token is
 * a fleet token (`beamdeck agent-token create load --fleet 'loadgen_*@*'`)
 * or BEAMDECK_AGENT_TOKEN. Exit 0 when every produced event was
 * acknowledged, 1 when not, 2 on bad usage.
 *
 * @module
 */
import fs from "node:fs";
import { Fleet } from "./fleet";
import { parseArgs } from "./options";

/** How long the end waits for the last acknowledgements. */
const DRAIN_MS = 15_000;
const REPORT_EVERY_MS = 10_000;

const USAGE = `usage: tsx tools/loadgen/main.ts --url ws://127.0.0.1:PORT/agent[,ws://…] --token AGENT_TOKEN
  [--agents 10] [--procs 10000] [--duration 60s] [--interval 1000] [--churn 200]
  [--events-per-second 1] [--prefix loadgen] [--concurrency 20] [--group G] [--json FILE]`;

async function main(): Promise<number> {
  let o: ReturnType<typeof parseArgs>;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`loadgen: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const fleet = new Fleet(o);
  const started = Date.now();
  const end = started + o.duration * 1000;
  let stopping = false;
  const stopEarly = () => {
    stopping = true;
  };
  process.once("SIGINT", stopEarly);
  process.once("SIGTERM", stopEarly);
  const report = setInterval(() => {
    const s = fleet.summary();
    console.log(`[${Math.round((Date.now() - started) / 1000)} s] connected ${s.connected}/${s.agents}, events ${s.eventsAcked}/${s.eventsProduced} acked, reconnects ${s.reconnects}`);
  }, REPORT_EVERY_MS);
  const connected = await Promise.race([fleet.start(o.duration * 1000), until(() => stopping || Date.now() >= end)]);
  console.log(`loadgen: ${typeof connected === "number" ? connected : fleet.connected()}/${o.agents} agents connected in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await until(() => stopping || Date.now() >= end);
  fleet.quiet();
  const drained = await fleet.drain(DRAIN_MS);
  clearInterval(report);
  const summary = fleet.summary();
  await fleet.stop();
  console.log(
    `loadgen: ${summary.agents} agents × ${summary.procsPerAgent} processes for ${((Date.now() - started) / 1000).toFixed(0)} s; events produced ${summary.eventsProduced}, acknowledged ${summary.eventsAcked}, dropped ${summary.eventsDropped}; reconnects ${summary.reconnects}; frames ${JSON.stringify(summary.framesSent)}`,
  );
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(summary));
  return drained ? 0 : 1;
}

async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 100));
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`loadgen: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
