"use client";
/** The choose stage: for the chosen target, lint, purge choices, relup and appups, the impact, and the guarded Install. */
import { errorMessage } from "../../../../../_lib/trpc";
import { ErrorBox, Panel } from "./Bits";
import { FallbackField } from "./Fallback";
import { ConfirmNode, OperatorOnly } from "./Guard";
import { ImpactPreview, LintList, killsText } from "./ImpactPreview";
import { OldCodePanel } from "./OldCodePanel";
import { PurgePicker } from "./PurgePicker";
import { ScriptView } from "./ScriptView";
import type { Plan } from "./types";
import type { UpgradeState } from "./useUpgradeState";

function appOfModules(plan: Plan): Map<string, string> {
  return new Map(plan.modules.filter((m) => m.app).map((m) => [m.module, m.app as string]));
}

export function ChooseStage({ s, target }: { s: UpgradeState; target: string }) {
  const { node, releases, plan } = s;
  return (
    <section className="up-choose-area" data-testid="choose-area" data-target={target}>
      <div className="up-stage-head">
        <h2>
          Upgrade {releases?.current} → {target}
        </h2>
        {plan ? (
          <span className="muted">
            {plan.relup.instructions} relup instruction(s) · {plan.modules.length} module(s) changed · {plan.direction === "down" ? "a downgrade" : "an upgrade"}
          </span>
        ) : null}
      </div>
      <ErrorBox error={s.planError} what="No preview" testid="plan-error" />
      {plan && s.kills ? (
        <>
          <LintList node={node} lint={plan.lint} errors={plan.lintErrors} />
          <div className="up-cols">
            <div className="up-col">
              <PurgePicker modules={s.pickerModules} post={s.post} pre={s.pre} onPost={(m, v) => s.chooseField("post", m, v)} onPre={(m, v) => s.chooseField("pre", m, v)} recomputing={s.planStale} />
              <ScriptView
                from={plan.from}
                to={plan.to}
                relupFile={plan.relupFile}
                original={plan.relup.original}
                rewritten={plan.relup.rewritten}
                changes={plan.relup.changes}
                appups={s.path ? s.path.appups : null}
                appupNote={s.pathPending ? "Reading the appups…" : s.pathError ? errorMessage(s.pathError) : "The agent returned no upgrade path for this version."}
                appOf={appOfModules(plan)}
              />
            </div>
            <div className="up-col">
              <ImpactPreview node={node} plan={plan} stale={s.planStale} fetching={s.planFetching} onRecompute={s.recomputePlan} title={`Impact of installing ${target}`} acceptance={s.acceptance} />
              <Panel title={`Install ${target}`} testid="install-panel">
                {s.targetEntry?.state === "package" ? (
                  <p className="up-needs-unpack" data-testid="needs-unpack">
                    {target} is still a package: unpack it (above) before installing. The preview reads the package as it is.
                  </p>
                ) : (
                  <OperatorOnly>
                    <ConfirmNode node={node} value={s.confirmInstall} onChange={s.setConfirmInstall} testid="confirm-install" />
                    <FallbackField value={s.fallbackText} onChange={s.setFallbackText} error={s.fallbackError} />
                    <InstallButton
                      vsn={target}
                      plan={plan}
                      stale={s.planStale}
                      busy={s.busy || s.install.isPending}
                      confirmed={s.confirmInstall === node && s.fallbackError === null}
                      kills={s.kills}
                      unaccepted={s.unacceptedFindings.length}
                      onClick={s.doInstall}
                    />
                  </OperatorOnly>
                )}
                <ErrorBox error={s.install.error} what="Install refused" onDismiss={() => s.install.reset()} testid="install-error" />
              </Panel>
            </div>
          </div>
        </>
      ) : s.planFetching ? (
        <div className="panel empty-state muted">Computing the impact on the live node…</div>
      ) : null}
      {s.oldCode && s.oldCode.total > 0 ? <OldCodePanel node={node} oldCode={s.oldCode} postOf={() => null} afterInstall={false} /> : null}
    </section>
  );
}

function InstallButton({
  vsn,
  plan,
  stale,
  busy,
  confirmed,
  kills,
  unaccepted,
  onClick,
}: {
  vsn: string;
  plan: Plan;
  stale: boolean;
  busy: boolean;
  confirmed: boolean;
  kills: { install: string[]; makePermanent: string[] };
  /** Error findings not yet accepted one by one. */
  unaccepted: number;
  onClick: () => void;
}) {
  const blocked = plan.verdict === "blocked";
  const total = kills.install.length + kills.makePermanent.length;
  const label = plan.nodeFate
    ? `Install ${vsn} — restarts the node`
    : blocked
      ? `Install ${vsn} — blocked: ${plan.counts.blocks_install} process(es) on old code with a soft pre-purge`
      : `Install ${vsn} — ${killsText(kills.install.length, kills.makePermanent.length)}${unaccepted > 0 ? ` (${unaccepted} error finding(s) to accept)` : ""}`;
  const why = stale
    ? "the preview is being recomputed for your choices"
    : blocked
      ? "switch the pre-purge (advanced) to brutal, or wait until those processes leave the old code"
      : unaccepted > 0
        ? `accept each error finding above first (${unaccepted} left): each is a way this upgrade is known to fail`
        : !confirmed
          ? "type the node name first"
          : busy
            ? "a step is running"
            : null;
  return (
    <div className="up-buttons">
      <button
        type="button"
        className={`btn btn-primary up-go${total > 0 || plan.nodeFate ? " up-go-danger" : ""}`}
        data-testid="install"
        data-kills={total}
        data-kills-now={kills.install.length}
        data-kills-later={kills.makePermanent.length}
        data-unaccepted={unaccepted}
        disabled={!confirmed || stale || busy || blocked || unaccepted > 0}
        onClick={onClick}
      >
        {label}
      </button>
      {why ? <span className="muted up-why-disabled">{why}</span> : null}
      {plan.counts.stays_on_old_code > 0 ? (
        <div className="up-aside">
          {plan.counts.stays_on_old_code} process(es) will stay on the old code; the next upgrade of that module kills them (brutal pre-purge) or is blocked by them (soft).
        </div>
      ) : null}
    </div>
  );
}
