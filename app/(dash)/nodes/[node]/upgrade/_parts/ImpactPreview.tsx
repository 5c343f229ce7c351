"use client";
/**
 * Who the step touches, computed on the live node: every process with the
 * changed modules' code on its stack, in a fun, or still on old code,
 * grouped by fate (worst first) and colour-coded, each with when and why.
 * The lint findings — the local-call loops that pin a process to old code,
 * and the functions that wait on a loop in a non-tail call — come first,
 * with the fix.
 */
import { Atom, Mfa } from "../../../../../_components/Names";
import { clock, elixirAlias, int } from "../../../../../_lib/format";
import { FATE_INFO, FateBadge, InitialCall, Panel, PidLink, procs } from "./Bits";
import { type AfterKill, FATES, type Fate, type Finding, type LintFinding, type Plan, type PlanProcess } from "./types";

const IMPACT: Record<Plan["impact"], string> = {
  safe: "Safe: no process dies or stays behind",
  at_risk: "No process dies, but some stay on old code or may fail later",
  kills: "Processes will be killed",
  blocked: "The install would be refused",
  restarts: "The node restarts",
};

/** Which error findings the operator accepted, one by one (only where this plan is the one to install). */
export interface FindingAcceptance {
  accepted: readonly string[];
  toggle: (id: string) => void;
}

/**
 * The plan's findings, errors first, above the kill list. Where the plan is
 * the one Install sends, each error finding has its own checkbox: Install
 * stays disabled until every one is accepted, and the ids go with the step
 * (the audit records them).
 */
function FindingList({ findings, acceptance }: { findings: Finding[]; acceptance?: FindingAcceptance }) {
  if (findings.length === 0) return null;
  const order = { error: 0, warning: 1, info: 2 } as const;
  return (
    <ul className="up-findings" data-testid="findings">
      {[...findings]
        .sort((a, b) => order[a.severity] - order[b.severity])
        .map((f) => (
          <li key={f.id} className={`up-finding up-finding-${f.severity}`} data-testid="finding" data-id={f.id} data-severity={f.severity}>
            {acceptance && f.severity === "error" ? (
              <label className="up-accept">
                <input type="checkbox" data-testid="accept-finding" data-id={f.id} checked={acceptance.accepted.includes(f.id)} onChange={() => acceptance.toggle(f.id)} /> accept
              </label>
            ) : null}
            <b>{f.severity}</b> <code>{f.id}</code> {f.message}
            {f.fix ? <div className="muted">{f.fix}</div> : null}
          </li>
        ))}
    </ul>
  );
}

/** "TestListener.start/1" (Elixir) or "mod:f/1" (Erlang). */
export function lintName(l: Pick<LintFinding, "module" | "function" | "arity">): string {
  const alias = elixirAlias(l.module);
  return alias ? `${alias}.${l.function}/${l.arity}` : `${l.module}:${l.function}/${l.arity}`;
}

export function LintList({ node, lint, errors }: { node: string; lint: LintFinding[]; errors: Plan["lintErrors"] }) {
  if (lint.length === 0 && errors.length === 0) return null;
  return (
    <section className="up-lint" data-testid="lint" aria-label="Lint">
      <h2 className="up-lint-title">
        {lint.length} function{lint.length === 1 ? "" : "s"} that can never reach new code
      </h2>
      <ul className="up-lint-list">
        {lint.map((l) => (
          <li key={`${l.module}.${l.function}/${l.arity}`} className="up-lint-item" data-testid="lint-item" data-module={l.module} data-function={l.function} data-arity={l.arity}>
            <div className="up-lint-head">
              <span className="up-lint-name" data-testid="lint-name">
                {lintName(l)}
              </span>
              <span className="up-lint-fix">
                fix: <code data-testid="lint-fix">{l.fix}</code>
              </span>
              {l.line ? <span className="muted">line {l.line}</span> : null}
              {l.evidence ? <span className="muted">{l.evidence}</span> : null}
              <span className="muted">
                in the {l.versions.join(" and ")} version{l.versions.length > 1 ? "s" : ""}
              </span>
            </div>
            <div className="up-lint-msg">{l.message}</div>
            {l.pids.length ? (
              <div className="up-lint-pids">
                stuck in it now:{" "}
                {l.pids.map((p) => (
                  <PidLink key={p} node={node} pid={p} />
                ))}
              </div>
            ) : null}
          </li>
        ))}
      </ul>
      {errors.map((e) => (
        <div key={`${e.module}-${e.version}`} className="muted up-lint-error">
          {e.module} ({e.version}): not linted — {e.error}
        </div>
      ))}
    </section>
  );
}

function ProcessRow({ node, p, module }: { node: string; p: PlanProcess; module: string }) {
  return (
    <li className={`up-proc up-proc-${p.fate}`} data-testid="impact-row" data-pid={p.pid} data-fate={p.fate} data-when={p.when ?? ""} data-module={module}>
      <div className="up-proc-line">
        <FateBadge fate={p.fate} when={p.when} />
        <PidLink node={node} pid={p.pid} />
        {p.alive === false ? <span className="muted">(gone)</span> : null}
        <span className="up-proc-who">{p.name ? <Atom text={p.name} compact /> : <InitialCall mfa={p.initialCall} />}</span>
        <span className="up-proc-mod up-small">
          <Atom text={module} compact />
          {p.stack?.length ? <span className="mono"> {p.stack.join(", ")} on its stack</span> : null}
          {p.holdsFun ? <span className="up-warn-text"> · holds a fun</span> : null}
        </span>
        {p.currentFunction ? (
          <span className="muted up-small">
            now in <Mfa mfa={p.currentFunction} />
          </span>
        ) : null}
      </div>
      <div className="up-why" data-testid="impact-why">
        {p.why}
      </div>
      {p.afterKill ? <AfterKillLine node={node} a={p.afterKill} /> : null}
    </li>
  );
}

/** After the kill: restarted by its supervisor (on the new code), or gone for good (issue 14, item 5). */
function AfterKillLine({ node, a }: { node: string; a: AfterKill }) {
  const head = a.outcome === "restarted" ? "restarted by its supervisor" : a.outcome === "gone" ? "gone for good" : "restart unknown";
  return (
    <div className={`up-after-kill up-after-kill-${a.outcome}`} data-testid="after-kill" data-outcome={a.outcome} data-restart={a.restart ?? ""} data-supervisor={a.supervisor ?? ""}>
      <b>{head}</b>
      {a.supervisor ? (
        <>
          {" "}
          · supervisor <PidLink node={node} pid={a.supervisor} testid="after-kill-supervisor" />
        </>
      ) : null}
      {a.restart ? <span className="muted"> ({a.restart} child)</span> : null} <span className="muted">— {a.why}</span>
    </div>
  );
}

/** One line for a button or a banner: "kills 0 now, 2 at make permanent". */
export function killsText(now: number, later: number | null): string {
  if (later === null) return now === 0 ? "kills none" : `kills ${now}`;
  if (now === 0 && later === 0) return "kills none";
  return `kills ${now} now, ${later} at make permanent`;
}

export function ImpactPreview({
  node,
  plan,
  stale,
  fetching,
  onRecompute,
  title,
  testid = "impact-panel",
  acceptance,
}: {
  node: string;
  plan: Plan;
  acceptance?: FindingAcceptance;
  stale: boolean;
  fetching: boolean;
  onRecompute: () => void;
  title: string;
  testid?: string;
}) {
  const rows: { fate: Fate; p: PlanProcess; module: string }[] = [];
  for (const m of plan.modules) for (const p of m.processes) rows.push({ fate: p.fate, p, module: m.module });
  const byFate = FATES.map((f) => ({ fate: f, rows: rows.filter((r) => r.fate === f) })).filter((g) => g.rows.length > 0);
  const c = plan.counts;
  return (
    <Panel
      title={title}
      testid={testid}
      className={`up-impact${stale ? " up-stale" : ""}`}
      meta={
        <span data-testid="impact-meta">
          {stale ? "recomputing… " : ""}computed {clock(plan.at)} over {int(plan.scan.processes)} processes in {(plan.scan.elapsedUs / 1000).toFixed(1)} ms{plan.scan.partial ? " (partial scan)" : ""}
        </span>
      }
      actions={
        <button type="button" className="btn btn-ghost" onClick={onRecompute} disabled={fetching} data-testid="recompute">
          {fetching ? "Computing…" : "Recompute"}
        </button>
      }
    >
      <div className={`up-verdict up-verdict-${plan.impact}`} data-testid="verdict" data-verdict={plan.verdict} data-impact={plan.impact}>
        <b>{IMPACT[plan.impact]}</b>
        <span className="up-counts" data-testid="impact-counts">
          {FATES.filter((f) => c[f] > 0).map((f) => (
            <span key={f} className={`up-count up-fate-${f}`} data-fate={f} data-count={c[f]}>
              {c[f]} {FATE_INFO[f].label}
              {f === "killed" ? ` (${c.killedAtInstall} at install, ${c.killedAtPermanent} at make_permanent)` : ""}
            </span>
          ))}
          {c.processes === 0 ? <span className="muted">no process references the changed modules</span> : null}
        </span>
      </div>
      {plan.nodeFate ? (
        <div className="up-node-fate" data-testid="node-fate">
          <FateBadge fate="node_restarts" when={plan.nodeFate.when} /> {plan.nodeFate.why}
        </div>
      ) : null}
      <FindingList findings={plan.findings} acceptance={acceptance} />
      <div
        className="muted up-digest"
        data-testid="plan-digest"
        data-digest={plan.digest}
        title="What Install/Make permanent/Roll back accept: the agent refuses the step if the plan it recomputes kills anyone else or has another error finding"
      >
        plan {plan.step} · digest <code>{plan.digest.slice(0, 16)}</code>
      </div>
      {plan.truncated ? <div className="alert alert-warn">The agent lists at most 400 processes; the counts above are complete, the list below is not.</div> : null}
      {byFate.map((g) => (
        <div key={g.fate} className={`up-fate-group up-group-${g.fate}`} data-testid="fate-group" data-fate={g.fate}>
          <div className="up-fate-group-head">
            <FateBadge fate={g.fate} /> <span>{procs(g.rows.length)}</span> <span className="muted">— {FATE_INFO[g.fate].help}</span>
          </div>
          <ul className="up-proc-list">
            {g.rows.map((r) => (
              <ProcessRow key={`${r.module}-${r.p.pid}`} node={node} p={r.p} module={r.module} />
            ))}
          </ul>
        </div>
      ))}
      {plan.applications.map((a) => (
        <div key={a.app} className="up-fate-group up-group-killed">
          <div className="up-fate-group-head">
            application <b>{a.app}</b> is stopped during install: {procs(a.processes.length)}
          </div>
        </div>
      ))}
    </Panel>
  );
}
