/**
 * `beamdeck rollout plan <group> <vsn>`: the upgrade plan of every node of
 * a group (kills and findings per node, and the total), before a fleet is
 * touched. Exits as `upgrade plan` does, by the worst node: 4 blocked >
 * 5 error findings > 3 would kill > 0 safe; 1 when a node of the group
 * could not be planned (disconnected, or the release is not there), since
 * a rollout could not cover it.
 */
import { groupName } from "../../fleet/rollout-options";
import { check, parse } from "../args";
import { call } from "../client";
import { CliError, EXIT, usage } from "../errors";
import { json, table } from "../format";
import type { Env } from "../../storage/database-url";
import { errorFindingIds, killCount, type Plan } from "../../upgrades/plan";
import { planFor, VERDICT_EXIT, vsnSchema } from "./upgrade";

/** Plans asked at once: each costs its node a process scan. */
const CONCURRENCY = 4;
const WORST_FIRST = [EXIT.blocked, EXIT.errorFindings, EXIT.wouldKill, EXIT.ok] as const;

type NodePlan = { node: string; plan: Plan; error?: undefined } | { node: string; plan?: undefined; error: string };

/** The exit code over several nodes' verdicts (decisions: 4 > 5 > 3 > 0). */
export function worstExit(codes: number[]): number {
  return WORST_FIRST.find((c) => codes.includes(c)) ?? EXIT.ok;
}

async function mapBounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function plan(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { purge: { type: "string", multiple: true }, "pre-purge": { type: "string", multiple: true }, json: { type: "boolean" } }, ["group", "vsn"]);
  const group = check(groupName, positionals[0], "group");
  const vsn = check(vsnSchema, positionals[1], "vsn");
  const groups = await call(env, (api) => api.groups.list.query());
  const g = groups.find((x) => x.name === group);
  if (!g) throw new CliError(`no group named ${group} (groups: ${groups.map((x) => x.name).join(", ") || "none"}; see: beamdeck groups)`, EXIT.usage);
  const plans: NodePlan[] = await mapBounded(g.nodes, CONCURRENCY, async (n): Promise<NodePlan> => {
    if (!n.connected) return { node: n.name, error: "not connected: cannot be planned or upgraded" };
    try {
      const { plan: p } = await planFor(env, n.name, vsn, values.purge as string[] | undefined, values["pre-purge"] as string[] | undefined);
      return { node: n.name, plan: p };
    } catch (e) {
      // A usage error (a typo in --purge) is the same on every node: stop at once.
      if (e instanceof CliError && e.exitCode === EXIT.usage) throw e;
      return { node: n.name, error: (e as Error).message };
    }
  });
  const planned = plans.filter((p): p is NodePlan & { plan: Plan } => p.plan !== undefined);
  const totalKills = planned.reduce((sum, p) => sum + killCount(p.plan), 0);
  const failed = plans.filter((p) => p.error !== undefined);
  const exit = failed.length ? EXIT.error : worstExit(planned.map((p) => VERDICT_EXIT[p.plan.verdict]));
  if (values.json) {
    console.log(json({ group, vsn, totalKills, exitCode: exit, nodes: plans }));
    return exit;
  }
  console.log(
    table(
      ["NODE", "STEP", "VERDICT", "KILLS", "ERROR FINDINGS", "DIGEST"],
      plans.map((p) =>
        p.plan
          ? [p.node, `${p.plan.step} ${p.plan.from} -> ${p.plan.to}`, p.plan.verdict, killCount(p.plan), errorFindingIds(p.plan).join(", ") || "-", p.plan.digest]
          : [p.node, "-", `not planned: ${p.error}`, null, null, null],
      ),
    ),
  );
  console.log(`group ${group} to ${vsn}: ${planned.length} of ${plans.length} node(s) planned, ${totalKills} process(es) would be killed in all`);
  return exit;
}

export async function rollout(argv: string[], env: Env): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "plan") return plan(rest, env);
  if (!sub) throw usage("rollout needs plan, start, status, halt, resume or abort");
  return (await import("./rollout-run")).rolloutRun(sub, rest, env);
}
