/**
 * `beamdeck releases <node>` and `beamdeck upgrade plan|install|permanent|
 * unpack|rollback`. `upgrade plan` prints the plan's digest and exits by
 * its verdict (4 blocked, 5 error findings, 3 would kill, 0 safe), so a
 * pipeline can gate on it; the steps take the gates (`--accept-plan`,
 * `--max-kills`, `--accept-finding`) and exit 2 without one when the step
 * kills or has error findings, 7 when the agent refuses a plan that
 * changed since it was reviewed (docs/cli.md).
 */
import { z } from "zod";
import { check, countArg, parse } from "../args";
import { call } from "../client";
import { CliError, EXIT, usage } from "../errors";
import { json, table } from "../format";
import { outcomeLine, runStep, type StepOutcome } from "../step";
import type { Env } from "../../storage/database-url";
import { parseFallback } from "../../upgrades/fallback";
import { findingId, planDigest, type Gate } from "../../upgrades/gate";
import type { ReleasesReply } from "../../agents/replies";
import { killCount, type Plan, type PurgeChoices, type Verification, verificationOf } from "../../upgrades/plan";
import { parsePurgeEntry } from "../../../app/_lib/purge";

/** The agent's check after the step: every changed module on its target code, or which are not. */
function verificationLine(v: Verification | null): string | null {
  if (!v) return null;
  const alive = (v.processes ?? []).length;
  if (v.ok) return `verified:           ${v.checked} module(s) run the target release's code${alive ? `; ${alive} unreachable process(es) alive` : ""}`;
  const lines: string[] = [];
  if (v.missedCount > 0) {
    const names = v.missed.map((m) => m.module).join(" ");
    lines.push(
      `NOT VERIFIED:       ${v.missedCount} of ${v.checked} module(s) do not run the target release's code: ${names}${v.missedCount > v.missed.length ? " …" : ""} (an appup that misses them?)`,
    );
  }
  const idle = v.notStarted ?? [];
  if (idle.length > 0)
    lines.push(`NOT VERIFIED:       ${idle.length} permanent child(ren) not started: ${idle.map((c) => `${c.supervisor}/${c.id}`).join(" ")} (new child specs release_handler does not start)`);
  const dead = (v.processes ?? []).filter((p) => !p.alive);
  if (dead.length > 0)
    lines.push(`NOT VERIFIED:       ${dead.length} process(es) the upgrade could not reach died: ${dead.map((p) => `${p.pid} (${p.module ?? "?"}${p.reason ? `, ${p.reason}` : ""})`).join(" ")}`);
  return lines.join("\n");
}

/** The status table's summary of each step's verification: `install:ok make_permanent:missed`. */
function verifiedSummary(actualKills: unknown): string {
  const steps = (actualKills ?? {}) as Record<string, unknown>;
  return (
    Object.entries(steps)
      .map(([step, s]) => {
        const v = verificationOf(s);
        return v ? `${step}:${v.ok ? "ok" : "missed"}` : null;
      })
      .filter((x) => x !== null)
      .join(" ") || "-"
  );
}

/** The exit code of `upgrade plan`: the agent's verdict. */
export const VERDICT_EXIT = { blocked: EXIT.blocked, error_findings: EXIT.errorFindings, would_kill: EXIT.wouldKill, safe: EXIT.ok } as const;
const maxKillsSchema = countArg(0, 10_000_000);

export const vsnSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\w.+-]+$/, "a release version like 0.1.1");

/** `Mod=soft|brutal`, with Elixir aliases resolved against the plan's modules. */
export function parsePurgeArgs(values: string[] | undefined, flag: string, modules: string[] | null): PurgeChoices {
  const out: PurgeChoices = {};
  for (const v of values ?? []) {
    const e = parsePurgeEntry(v);
    if (!e) throw usage(`${flag} takes Module=soft or Module=brutal, not "${v}"`);
    const name = e.module;
    if (modules === null) continue; // syntax check only
    const resolved = modules.includes(name) ? name : modules.includes(`Elixir.${name}`) ? `Elixir.${name}` : null;
    if (!resolved) throw usage(`${flag}: ${name} is not loaded by this upgrade (modules: ${modules.join(", ") || "none"})`);
    out[resolved] = e.purge;
  }
  return out;
}

export async function releases(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" } }, ["node"]);
  const r = await call(env, (api) => api.upgrades.releases.query({ node: positionals[0] }));
  if (values.json) {
    console.log(json(r));
    return 0;
  }
  console.log(table(["RELEASE", "VERSION", "STATUS"], releaseRows(r)));
  return 0;
}

/** Releases release_handler knows, then the packages in the release directory it has not unpacked yet. */
export function releaseRows(r: Pick<ReleasesReply, "releases" | "packages">): string[][] {
  return [...r.releases.map((x) => [x.name, x.vsn, x.status]), ...r.packages.filter((p) => !p.unpacked).map((p) => [p.package, p.vsn ?? "?", "package (not unpacked)"])];
}

function summarise(plan: Plan): string {
  const lines: string[] = [];
  for (const m of plan.modules) {
    lines.push(`${m.module}  pre-purge ${m.prePurge ?? "-"}  post-purge ${m.postPurge ?? "-"}`);
    for (const p of m.processes) lines.push(`  ${p.pid} ${p.name ?? ""}  ${p.fate}${p.when ? ` at ${p.when}` : ""}  ${p.why ?? ""}`);
  }
  for (const l of plan.lint) lines.push(`lint: ${l.module}.${l.function}/${l.arity}: ${l.message}`);
  for (const f of plan.findings) lines.push(`${f.severity}: ${f.id}: ${f.message}${f.count ? ` (${f.count} process(es))` : ""}${f.fix ? `\n  fix: ${f.fix}` : ""}`);
  return lines.join("\n");
}

export function verdictLine(plan: Plan): string {
  const errors = plan.findings.filter((f) => f.severity === "error").map((f) => f.id);
  switch (plan.verdict) {
    case "blocked":
      return "BLOCKED: a soft pre-purge meets processes on old code; install would fail";
    case "error_findings":
      return `ERROR FINDINGS: ${errors.join(", ")}${killCount(plan) ? `; would kill ${killCount(plan)} process(es)` : ""}`;
    case "would_kill":
      return `WOULD KILL ${killCount(plan)} process(es)`;
    default:
      return "SAFE: no process would be killed";
  }
}

/** The gate flags of a step, checked before anything is asked. */
function gateOf(values: Record<string, unknown>): Gate {
  const g: Gate = {};
  if (values["accept-plan"] !== undefined) g.acceptPlan = check(planDigest, values["accept-plan"], "--accept-plan");
  if (values["max-kills"] !== undefined) g.maxKills = check(maxKillsSchema, values["max-kills"], "--max-kills");
  const findings = (values["accept-finding"] as string[] | undefined) ?? [];
  if (findings.length) g.acceptFindings = findings.map((f) => check(findingId, f, "--accept-finding"));
  return g;
}

/** `--fallback DUR` (install only): the duration in ms, a usage error when malformed or out of bounds. */
function fallbackOf(sub: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (sub !== "install") throw usage("--fallback is for upgrade install only");
  const d = parseFallback(text);
  if (!d.ok) throw usage(`--fallback: ${d.message}`);
  return d.ms;
}

/** The agent's runner refused: the plan recomputed before the step is outside the gate. */
function planChanged(message: string | undefined): boolean {
  return Boolean(message?.startsWith("plan_changed:"));
}

export async function planFor(env: Env, node: string, vsn: string, purgeArgs?: string[], preArgs?: string[]) {
  // The syntax first, before asking anyone: a typo is a usage error.
  parsePurgeArgs(purgeArgs, "--purge", null);
  parsePurgeArgs(preArgs, "--pre-purge", null);
  const base = await call(env, (api) => api.upgrades.plan.query({ node, vsn }));
  const modules = base.modules.map((m) => m.module);
  const purge = parsePurgeArgs(purgeArgs, "--purge", modules);
  const prePurge = parsePurgeArgs(preArgs, "--pre-purge", modules);
  const plan = Object.keys(purge).length || Object.keys(prePurge).length ? await call(env, (api) => api.upgrades.plan.query({ node, vsn, purge, prePurge })) : base;
  return { plan, purge, prePurge };
}

async function lastUpgrade(env: Env, node: string) {
  const h = await call(env, (api) => api.upgrades.history.query({ node, limit: 1 }));
  return h[0] ?? null;
}

export async function upgrade(argv: string[], env: Env): Promise<number> {
  const [sub, ...rest] = argv;
  const opts = {
    purge: { type: "string" as const, multiple: true },
    "pre-purge": { type: "string" as const, multiple: true },
    json: { type: "boolean" as const },
    yes: { type: "boolean" as const },
    "accept-plan": { type: "string" as const },
    "max-kills": { type: "string" as const },
    "accept-finding": { type: "string" as const, multiple: true },
    fallback: { type: "string" as const },
  };
  if (sub === "plan") {
    const { values, positionals } = parse(rest, opts, ["node", "vsn"]);
    const vsn = check(vsnSchema, positionals[1], "vsn");
    const { plan } = await planFor(env, positionals[0], vsn, values.purge as string[], values["pre-purge"] as string[]);
    if (values.json) console.log(json(plan));
    else {
      console.log(summarise(plan));
      console.log(verdictLine(plan));
      console.log(`step: ${plan.step} ${plan.from} -> ${plan.to}`);
      console.log(`digest: ${plan.digest}  (accept this plan: --accept-plan ${plan.digest})`);
    }
    return VERDICT_EXIT[plan.verdict];
  }
  if (sub === "unpack") {
    const { values, positionals } = parse(rest, { json: { type: "boolean" } }, ["node", "vsn"]);
    const [node, vsn] = [positionals[0], check(vsnSchema, positionals[1], "vsn")];
    const out = await runStep(env, node, `unpack of ${vsn} on ${node}`, (commandId, timeoutMs) => call(env, (api) => api.upgrades.unpack.mutate({ node, vsn, commandId }), timeoutMs));
    if (values.json) console.log(json({ ok: out.ok, commandId: out.commandId, repeated: out.repeated, message: out.message ?? null }));
    else console.log(outcomeLine(out, `unpacked ${vsn} on ${node}`, "unpack failed"));
    return out.ok ? 0 : 1;
  }
  if (sub === "install" || sub === "permanent" || sub === "rollback") {
    const positionalsWanted = sub === "rollback" ? ["node"] : ["node", "vsn"];
    const { values, positionals } = parse(rest, opts, positionalsWanted);
    const node = positionals[0];
    if (!values.yes) throw usage(`upgrade ${sub} changes the node: add --yes to confirm`);
    const gate = gateOf(values);
    const fallbackMs = fallbackOf(sub, values.fallback as string | undefined);
    let out: StepOutcome;
    if (sub === "install") {
      const vsn = check(vsnSchema, positionals[1], "vsn");
      const { plan, purge, prePurge } = await planFor(env, node, vsn, values.purge as string[], values["pre-purge"] as string[]);
      console.error(`installing ${vsn} on ${node}: ${killCount(plan)} process(es) predicted to be killed`);
      out = await runStep(env, node, `install of ${vsn} on ${node}`, (commandId, timeoutMs) =>
        call(env, (api) => api.upgrades.install.mutate({ node, vsn, purge, prePurge, confirmNode: node, ...gate, commandId, fallbackMs }), timeoutMs),
      );
    } else if (sub === "permanent") {
      const vsn = check(vsnSchema, positionals[1], "vsn");
      const last = await lastUpgrade(env, node);
      if (!last || last.toVsn !== vsn) throw new CliError(`no installed upgrade to ${vsn} on ${node}${last ? ` (the last one is to ${last.toVsn}, ${last.status})` : ""}`);
      out = await runStep(env, node, `make_permanent of ${vsn} on ${node}`, async (commandId, timeoutMs) => {
        const r = await call(env, (api) => api.upgrades.makePermanent.mutate({ node, upgradeId: last.id, confirmNode: node, ...gate, commandId }), timeoutMs);
        console.error(`making ${vsn} permanent on ${node}: ${r.predicted} process(es) still on old code of brutal-purge modules will be killed`);
        return r;
      });
    } else {
      out = await runStep(env, node, `rollback on ${node}`, (commandId, timeoutMs) => call(env, (api) => api.upgrades.rollback.mutate({ node, confirmNode: node, ...gate, commandId }), timeoutMs));
    }
    const last = await lastUpgrade(env, node);
    if (values.json) console.log(json({ ok: out.ok, commandId: out.commandId, repeated: out.repeated, upgrade: last }));
    else {
      console.log(outcomeLine(out, `${sub} done (${out.commandId})`, `${sub} FAILED`));
      const step = last?.actualKills[sub === "permanent" ? "make_permanent" : sub];
      if (step?.comparison) {
        console.log(`predicted and died: ${step.comparison.predictedAndDied.join(" ") || "-"}`);
        console.log(`predicted, alive:   ${step.comparison.predictedButAlive.join(" ") || "-"}`);
        console.log(`died, unpredicted:  ${step.comparison.diedUnpredicted.join(" ") || "-"}`);
      }
      const verified = verificationLine(step?.verification ?? null);
      if (verified) console.log(verified);
      if (sub === "install" && last?.fallback?.line) console.log(last.fallback.line);
    }
    if (!out.ok && planChanged(out.message)) console.error("the plan changed since it was reviewed: run `beamdeck upgrade plan` again and review it");
    return out.ok ? EXIT.ok : planChanged(out.message) ? EXIT.planChanged : EXIT.error;
  }
  if (sub === "status") {
    const { values, positionals } = parse(rest, { json: { type: "boolean" } }, ["node"]);
    const h = await call(env, (api) => api.upgrades.history.query({ node: positionals[0], limit: 10 }));
    if (values.json) console.log(json(h));
    else
      console.log(
        table(
          ["UPGRADE", "FROM", "TO", "STATUS", "BY", "STEPS", "VERIFIED"],
          h.map((u) => [u.id, u.fromVsn, u.toVsn, u.status, u.createdBy, u.commands.map((c) => `${c.action}:${c.status}`).join(" "), verifiedSummary(u.actualKills)]),
        ),
      );
    if (!values.json)
      for (const u of h) {
        const f = u.fallback;
        if (f?.line) console.log(`${u.id}: ${f.line}`);
        else if (f?.outcome) console.log(`${u.id}: fallback ${f.outcome}: ${f.message}`);
      }
    return 0;
  }
  throw usage(`upgrade needs plan, unpack, install, permanent, rollback or status${sub ? `, not "${sub}"` : ""}`);
}
