/**
 * CLI response time as a user feels it (issue 14, item 10: "< 300 ms"): the
 * whole command, from spawning `node bin/beamdeck.js` to its exit, against a
 * real server with a real node connected. Each command runs several times
 * after warm-ups (the first runs fill the OS file cache); the median is the
 * figure to quote on a shared machine, min and max show the noise. A bare
 * `node -e 0` is timed in the same run: the part no CLI can go below.
 */
import { spawnSync } from "node:child_process";
import { stopAll } from "../../tools/beam/nodes";
import { startAgentNode, waitConnected } from "../support/beam-node";
import { ROOT, startServer } from "../support/server";

/** The goal of the issue, per command. */
const GOAL_MS = 300;
const RUNS = 10;
const WARMUPS = 2;
/** One run's bound: a hung command is a result too, not a hung bench. */
const RUN_TIMEOUT_MS = 30_000;

export interface CliTiming {
  command: string;
  min: number;
  median: number;
  max: number;
  goal: number | null;
  met: boolean | null;
}

function timeOnce(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], timeout: RUN_TIMEOUT_MS });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(" ")} exited ${r.status ?? r.signal}: ${String(r.stderr).slice(0, 500)}`);
  return ms;
}

/**
 * The commands in turn, A B C … A B C …, so that a slow spell of the shared
 * machine (or the node's own start-up work) falls on all of them alike.
 */
function timeCommands(cmds: { label: string; args: string[]; goal: number | null }[], env: NodeJS.ProcessEnv): CliTiming[] {
  for (let i = 0; i < WARMUPS; i += 1) for (const c of cmds) timeOnce(c.args, env);
  const runs = cmds.map(() => [] as number[]);
  for (let i = 0; i < RUNS; i += 1) for (const [j, c] of cmds.entries()) runs[j].push(timeOnce(c.args, env));
  return cmds.map((c, j) => {
    const xs = runs[j].sort((a, b) => a - b);
    const median = Math.round(xs[Math.floor(xs.length / 2)]);
    return { command: c.label, min: Math.round(xs[0]), median, max: Math.round(xs.at(-1) ?? 0), goal: c.goal, met: c.goal === null ? null : median < c.goal };
  });
}

export function printCliTable(rows: CliTiming[]): void {
  console.log(`\n== CLI, whole command as the user waits for it (ms over ${RUNS} runs after ${WARMUPS} warm-ups; goal: median < ${GOAL_MS})`);
  // The ratio to `node -e 0` in the same run carries across machines and loads; the absolute goal does not.
  const floor = rows.find((r) => r.goal === null)?.median ?? null;
  const head = ["command", "min", "median", "max", "× floor", "goal"];
  const cells = rows.map((r) => [r.command, String(r.min), String(r.median), String(r.max), floor ? (r.median / floor).toFixed(1) : "-", r.met === null ? "(floor)" : r.met ? "met" : "UNMET"]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  for (const line of [head, ...cells]) console.log(`  ${line.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ")}`);
}

export async function cliBench(): Promise<CliTiming[]> {
  const server = await startServer();
  try {
    const { node } = await startAgentNode(server);
    await waitConnected(server, node.name);
    const env = { ...server.env } as NodeJS.ProcessEnv;
    const bin = `${ROOT}/bin/beamdeck.js`;
    return timeCommands(
      [
        { label: "node -e 0 (no CLI)", args: ["-e", "0"], goal: null },
        { label: "beamdeck --help", args: [bin, "--help"], goal: GOAL_MS },
        { label: "beamdeck nodes", args: [bin, "nodes"], goal: GOAL_MS },
        { label: "beamdeck nodes --json", args: [bin, "nodes", "--json"], goal: GOAL_MS },
        { label: "beamdeck procs <node>", args: [bin, "procs", node.name], goal: GOAL_MS },
        { label: "beamdeck events <node>", args: [bin, "events", node.name, "--limit", "20"], goal: GOAL_MS },
      ],
      env,
    );
  } finally {
    await stopAll();
    await server.stop();
  }
}
