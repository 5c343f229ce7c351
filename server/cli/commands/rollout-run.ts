/**
 * `beamdeck rollout start|status|halt|resume|abort`: a rolling upgrade of a
 * group, driven by the server (it goes on when the CLI exits). `start`
 * prints the rollout id; `status` shows each node's step, predicted versus
 * actual kills and the health gate's figures, and exits 8 while the rollout
 * is halted; `status --wait` follows it until it ends (no deadline).
 */
import { z } from "zod";
import { check, countArg, parse } from "../args";
import { call } from "../client";
import { CliError, EXIT, usage } from "../errors";
import { json, table } from "../format";
import type { Env } from "../../storage/database-url";
import { groupName, rolloutId, type RolloutStatus } from "../../fleet/rollout-options";
import { deathsOf, predictedKillCount } from "../../fleet/rollout-figures";
import type { RolloutView } from "../../fleet/rollout-store";
import { parseSoak } from "../../../app/_lib/duration";
import { parseFallback } from "../../upgrades/fallback";
import { findingId, planDigest } from "../../upgrades/gate";
import { planFor, vsnSchema } from "./upgrade";

/** `--soak 90s`: a number and a unit (ms, s, m, h); the syntax is the page's too (app/_lib/duration.ts). */
export const durationArg = z.string().transform((v, ctx) => {
  const p = parseSoak(v);
  if (p.ok) return p.ms;
  ctx.addIssue({ code: "custom", message: p.message });
  return z.NEVER;
});

/** Exit code of a rollout's state: 8 halted (decisions' table), 1 aborted, else 0. */
export function statusExit(s: RolloutStatus): number {
  return s === "halted" ? EXIT.rolloutHalted : s === "aborted" ? EXIT.error : EXIT.ok;
}

async function start(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      purge: { type: "string", multiple: true },
      "pre-purge": { type: "string", multiple: true },
      canary: { type: "string" },
      batch: { type: "string" },
      soak: { type: "string" },
      "max-kills": { type: "string" },
      "accept-plan": { type: "string", multiple: true },
      "accept-finding": { type: "string", multiple: true },
      "auto-rollback": { type: "boolean" },
      fallback: { type: "string" },
      yes: { type: "boolean" },
      json: { type: "boolean" },
    },
    ["group", "vsn"],
  );
  const group = check(groupName, positionals[0], "group");
  const vsn = check(vsnSchema, positionals[1], "vsn");
  const canary = values.canary === undefined ? undefined : check(countArg(1, 100), values.canary, "--canary");
  const batch = values.batch === undefined ? undefined : check(countArg(1, 100), values.batch, "--batch");
  const soakMs = values.soak === undefined ? undefined : check(durationArg, values.soak, "--soak");
  const fallback = values.fallback === undefined ? undefined : parseFallback(String(values.fallback));
  if (fallback && !fallback.ok) throw usage(`--fallback: ${fallback.message}`);
  const fallbackMs = fallback?.ok ? fallback.ms : undefined;
  const maxKills = values["max-kills"] === undefined ? undefined : check(countArg(0, 10_000_000), values["max-kills"], "--max-kills");
  const acceptPlans = ((values["accept-plan"] as string[] | undefined) ?? []).map((d) => check(planDigest, d, "--accept-plan"));
  const acceptFindings = ((values["accept-finding"] as string[] | undefined) ?? []).map((f) => check(findingId, f, "--accept-finding"));
  if (!values.yes) throw usage("rollout start changes every node of the group: add --yes to confirm");
  const groups = await call(env, (api) => api.groups.list.query());
  const g = groups.find((x) => x.name === group);
  if (!g) throw new CliError(`no group named ${group} (groups: ${groups.map((x) => x.name).join(", ") || "none"}; see: beamdeck groups)`, EXIT.usage);
  let purge = {};
  let prePurge = {};
  const first = g.nodes.find((n) => n.connected);
  if (first && (values.purge || values["pre-purge"])) {
    // Module names (and Elixir aliases) resolved once against the plan of the group's first node.
    ({ purge, prePurge } = await planFor(env, first.name, vsn, values.purge as string[] | undefined, values["pre-purge"] as string[] | undefined));
  }
  const { id } = await call(env, (api) =>
    api.rollouts.start.mutate({ group, vsn, purge, prePurge, canary, batch, soakMs, fallbackMs, maxKills, acceptPlans, acceptFindings, autoRollback: Boolean(values["auto-rollback"]) }),
  );
  console.log(values.json ? json({ id }) : id);
  return EXIT.ok;
}

function gateLine(g: Record<string, unknown> | null): string {
  if (!g) return "-";
  const f = g as { soakedMs?: number; connected?: boolean; unexpectedReports?: number; alerts?: string[] };
  return `soaked ${Math.round((f.soakedMs ?? 0) / 1000)}s, ${f.connected ? "connected" : "DISCONNECTED"}, ${f.unexpectedReports ?? 0} unexpected report(s), ${f.alerts?.length ?? 0} alert(s)`;
}

export function printRollout(r: RolloutView): void {
  console.log(`rollout ${r.id}: group ${r.group} to ${r.toVsn}: ${r.status}${r.haltReason ? ` — ${r.haltReason}` : ""}`);
  console.log(
    table(
      ["#", "NODE", "STEP", "FROM", "PREDICTED", "DIED", "UNPREDICTED", "GATE", "ERROR"],
      r.nodes.map((n) => {
        const d = deathsOf(n.actual);
        return [n.position + 1, n.node, n.step, n.fromVsn ?? "-", predictedKillCount(n.predicted), d.died, d.unpredicted, gateLine(n.gate), n.error ?? "-"];
      }),
    ),
  );
}

const ACTIVE: RolloutStatus[] = ["pending", "unpacking", "canary", "batches"];

async function status(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" }, wait: { type: "boolean" } }, ["id"]);
  const id = check(rolloutId, positionals[0], "id");
  let r = await call(env, (api) => api.rollouts.get.query({ id }));
  // Following a rollout has no deadline (decisions): it ends when the rollout does.
  while (values.wait && ACTIVE.includes(r.status)) {
    await new Promise((res) => setTimeout(res, 1000));
    r = await call(env, (api) => api.rollouts.get.query({ id }));
  }
  if (values.json) console.log(json(r));
  else printRollout(r);
  return statusExit(r.status);
}

async function action(which: "halt" | "resume" | "abort", argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" }, reason: { type: "string" } }, ["id"]);
  const id = check(rolloutId, positionals[0], "id");
  const reason = values.reason === undefined ? undefined : check(z.string().min(1).max(500), values.reason, "--reason");
  const r = await call(env, (api) => (which === "halt" ? api.rollouts.halt.mutate({ id, reason }) : which === "resume" ? api.rollouts.resume.mutate({ id }) : api.rollouts.abort.mutate({ id })));
  if (values.json) console.log(json(r));
  else printRollout(r);
  return EXIT.ok;
}

export async function rolloutRun(sub: string, argv: string[], env: Env): Promise<number> {
  if (sub === "start") return start(argv, env);
  if (sub === "status") return status(argv, env);
  if (sub === "halt" || sub === "resume" || sub === "abort") return action(sub, argv, env);
  throw usage(`rollout needs plan, start, status, halt, resume or abort, not "${sub}"`);
}
