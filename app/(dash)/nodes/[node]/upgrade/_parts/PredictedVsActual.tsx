"use client";
/**
 * After a step: the kills the operator was shown and accepted, beside the
 * processes that actually died (the agent watched them), matched by pid.
 */
import { Atom } from "../../../../../_components/Names";
import { InitialCall, PidLink } from "./Bits";
import type { Verification } from "../../../../../../server/upgrades/plan";
import { commandOutcome, type DeathRow, STEPS, type Step, type Upgrade } from "./types";

const STEP_LABEL: Record<Step, string> = { install: "install", make_permanent: "make permanent", rollback: "roll back" };

/** How many processes the agent watched around the step (those the preview named, and their links). */
function watchedOf(u: Upgrade, step: Step): number | null {
  for (const c of u.commands) {
    if (c.action !== step) continue;
    const watched = commandOutcome(c).result?.deaths?.watched;
    if (watched !== undefined) return watched;
  }
  return null;
}

function deathsOf(u: Upgrade, step: Step): Map<string, DeathRow> {
  const out = new Map<string, DeathRow>();
  for (const c of u.commands) {
    if (c.action !== step) continue;
    const { result } = commandOutcome(c);
    const d = result?.deaths;
    if (!d) continue;
    for (const rows of [d.predictedAndDied, d.predictedButAlive, d.diedUnpredicted]) for (const r of rows) out.set(r.pid, r);
  }
  return out;
}

function Who({ node, pid, info }: { node: string; pid: string; info?: DeathRow }) {
  return (
    <span className="up-who">
      <PidLink node={node} pid={pid} />
      {info?.name ? <Atom text={info.name} compact /> : info?.initialCall ? <InitialCall mfa={info.initialCall} /> : null}
      {info?.reason ? <span className="muted"> · {info.reason}</span> : null}
    </span>
  );
}

export function StepComparison({ node, u, step }: { node: string; u: Upgrade; step: Step }) {
  const expected = u.expectedKills[step] ?? [];
  const actual = u.actualKills[step];
  const info = deathsOf(u, step);
  if (!actual) {
    return (
      <div className="up-pva-step" data-testid="pva-step" data-step={step} data-done="false">
        <div className="up-pva-title">{STEP_LABEL[step]}</div>
        <div className="muted">predicted {expected.length} kill(s); the step has not reported yet</div>
      </div>
    );
  }
  const cmp = actual.comparison ?? { predictedAndDied: [], predictedButAlive: expected, diedUnpredicted: actual.died };
  const held = cmp.predictedButAlive.length === 0 && cmp.diedUnpredicted.length === 0;
  const watched = watchedOf(u, step);
  return (
    <div className="up-pva-step" data-testid="pva-step" data-step={step} data-done="true" data-held={String(held)}>
      <div className="up-pva-title">
        {STEP_LABEL[step]} —{" "}
        <span className={held ? "up-held" : "up-missed"} data-testid="pva-verdict">
          {held ? `prediction held: ${expected.length} predicted, ${actual.died.length} died` : `prediction missed: ${expected.length} predicted, ${actual.died.length} died`}
        </span>
      </div>
      <div className="up-pva-cols">
        <div className="up-pva-col" data-testid="pva-predicted" data-count={expected.length}>
          <div className="up-pva-head">Predicted to die ({expected.length})</div>
          {expected.length === 0 ? <div className="muted">none</div> : null}
          {expected.map((p) => (
            <div key={p} className={cmp.predictedAndDied.includes(p) ? "up-pva-ok" : "up-pva-miss"}>
              <Who node={node} pid={p} info={info.get(p)} />{" "}
              {cmp.predictedAndDied.includes(p) ? <span className="up-tag up-tag-ok">died</span> : <span className="up-tag up-tag-miss">still alive</span>}
            </div>
          ))}
        </div>
        <div className="up-pva-col" data-testid="pva-actual" data-count={actual.died.length}>
          <div className="up-pva-head">Actually died ({actual.died.length})</div>
          {actual.died.length === 0 ? <div className="muted">none{watched !== null ? ` of the ${watched} process(es) the agent watched (those the preview named, and their links)` : ""}</div> : null}
          {actual.died.map((p) => (
            <div key={p} className={cmp.diedUnpredicted.includes(p) ? "up-pva-miss" : "up-pva-ok"}>
              <Who node={node} pid={p} info={info.get(p)} />{" "}
              {cmp.diedUnpredicted.includes(p) ? <span className="up-tag up-tag-miss">not predicted</span> : <span className="up-tag up-tag-ok">predicted</span>}
            </div>
          ))}
        </div>
      </div>
      <VerificationLine node={node} v={actual.verification ?? null} />
    </div>
  );
}

/** The agent's check right after the step: every changed module on its target code, new children started, unreachable processes alive. */
function VerificationLine({ node, v }: { node: string; v: Verification | null }) {
  if (!v) return null;
  const procs = v.processes ?? [];
  const dead = procs.filter((p) => !p.alive);
  if (v.ok)
    return (
      <div className="up-held" data-testid="pva-verification" data-ok="true">
        verified: {v.checked} module(s) run the target release&apos;s code{procs.length > 0 ? `; ${procs.length} process(es) the upgrade could not reach are alive` : ""}
      </div>
    );
  const idle = v.notStarted ?? [];
  return (
    <div className="up-missed" data-testid="pva-verification" data-ok="false">
      NOT VERIFIED:
      {v.missedCount > 0 ? ` ${v.missedCount} of ${v.checked} module(s) still run other code (${v.missed.map((m) => m.module).join(", ")}) — an appup that misses them?` : ""}
      {idle.length > 0 ? ` ${idle.length} permanent child(ren) not started (${idle.map((c) => `${c.supervisor}/${c.id}`).join(", ")}) — new child specs release_handler does not start.` : ""}
      {dead.length > 0 ? (
        <span data-testid="pva-verification-dead" data-count={dead.length}>
          {` ${dead.length} process(es) the upgrade could not reach (not_suspended) died:`}
          {dead.map((p) => (
            <span key={p.pid}>
              {" "}
              <PidLink node={node} pid={p.pid} /> {p.module ?? "?"}
              {p.reason ? <span className="muted"> · {p.reason}</span> : <span className="muted"> · reason not seen</span>}
            </span>
          ))}
        </span>
      ) : null}
    </div>
  );
}

/** The steps of an upgrade that predict kills, in the order they ran. */
export function stepsOf(u: Upgrade): Step[] {
  const seen: Step[] = [];
  for (const c of u.commands) {
    const a = STEPS.find((s) => s === c.action);
    if (a && !seen.includes(a)) seen.push(a);
  }
  return seen;
}

export function PredictedVsActual({ node, u }: { node: string; u: Upgrade }) {
  const steps = stepsOf(u);
  return (
    <div className="up-pva" data-testid="pva" data-upgrade={u.id}>
      {steps.map((s) => (
        <StepComparison key={s} node={node} u={u} step={s} />
      ))}
    </div>
  );
}
