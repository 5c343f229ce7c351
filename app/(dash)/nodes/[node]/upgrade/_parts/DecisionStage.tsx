"use client";
/** The decide stage: a release is installed and not permanent; who is on old code, and make permanent or roll back. */
import { ErrorBox, Panel } from "./Bits";
import { FallbackLine } from "./Fallback";
import { ConfirmNode, OperatorOnly } from "./Guard";
import { ImpactPreview, LintList, killsText } from "./ImpactPreview";
import { OldCodePanel } from "./OldCodePanel";
import { PredictedVsActual } from "./PredictedVsActual";
import type { UpgradeState } from "./useUpgradeState";

export function DecisionStage({ s }: { s: UpgradeState }) {
  const { node, releases, permPlan, rbPlan, rollbackKills, permanentKills } = s;
  if (!releases) return null;
  const rollbackTotal = rollbackKills ? rollbackKills.install.length + rollbackKills.makePermanent.length : null;
  // Error findings of each plan are accepted one by one, as for Install: the button says how many are left.
  const permLeft = s.permAcceptance.unaccepted.length;
  const rbLeft = s.rbAcceptance.unaccepted.length;
  const left = (n: number) => (n > 0 ? ` (${n} error finding(s) to accept)` : "");
  return (
    <section className="up-decision-area" data-testid="decision-area">
      <div className="up-stage-head">
        <h2>
          {releases.current} is installed and running — {releases.permanent} is still permanent
        </h2>
        <p className="muted">
          A restart of the node would boot {releases.permanent}. Decide: make {releases.current} permanent (brutal post-purges kill whoever is still on old code, below), or roll back to{" "}
          {releases.permanent} through the relup&apos;s down instructions.
        </p>
        <FallbackLine upgrade={s.currentUpgrade} />
      </div>
      <div className="up-cols">
        <div className="up-col">
          <OldCodePanel node={node} oldCode={s.oldCode} postOf={s.postOf} afterInstall error={s.oldCodeError} />
        </div>
        <div className="up-col">
          <Panel title="Make permanent or roll back" testid="decision-panel">
            <OperatorOnly>
              <ConfirmNode node={node} value={s.confirmDecision} onChange={s.setConfirmDecision} testid="confirm-decision" />
              <div className="up-buttons">
                <button
                  type="button"
                  className={`btn btn-primary up-go${permanentKills ? " up-go-danger" : ""}`}
                  data-testid="make-permanent"
                  data-kills={permanentKills ?? ""}
                  data-unaccepted={permLeft}
                  disabled={s.confirmDecision !== node || s.busy || !permPlan || s.permPlanFetching || permLeft > 0}
                  onClick={s.doMakePermanent}
                >
                  Make {releases.current} permanent — {permanentKills === null ? "…" : permanentKills === 0 ? "kills none" : `kills ${permanentKills} now`}
                  {left(permLeft)}
                </button>
                <button
                  type="button"
                  className="btn up-go-secondary"
                  data-testid="rollback"
                  data-unaccepted={rbLeft}
                  disabled={s.confirmDecision !== node || s.busy || rbLeft > 0}
                  onClick={s.doRollback}
                >
                  Roll back to {releases.permanent} — {rollbackTotal !== null ? killsText(rollbackTotal, null) : s.rbPlanError ? "impact unknown" : "…"}
                  {left(rbLeft)}
                </button>
              </div>
              <ErrorBox error={s.rbPlanError} what="No rollback preview" testid="rollback-plan-error" />
            </OperatorOnly>
            <ErrorBox error={s.makePermanent.error} what="Make permanent refused" onDismiss={() => s.makePermanent.reset()} testid="permanent-error" />
            <ErrorBox error={s.rollback.error} what="Roll back refused" onDismiss={() => s.rollback.reset()} testid="rollback-error" />
          </Panel>
          {s.currentUpgrade ? (
            <Panel title="Predicted vs actual so far" testid="pva-panel">
              <PredictedVsActual node={node} u={s.currentUpgrade} />
            </Panel>
          ) : null}
          {permPlan ? <LintList node={node} lint={permPlan.lint} errors={permPlan.lintErrors} /> : null}
        </div>
      </div>
      {permPlan ? (
        <ImpactPreview
          node={node}
          plan={permPlan}
          stale={s.permPlanFetching}
          fetching={s.permPlanFetching}
          onRecompute={s.recomputePermPlan}
          title="What make_permanent does now"
          acceptance={s.permAcceptance}
        />
      ) : null}
      <ErrorBox error={s.permPlanError} what="No preview" />
      {rbPlan && rollbackTotal !== null ? (
        <details className="up-rollback-details" data-testid="rollback-details" open={rbLeft > 0 || undefined}>
          <summary>
            What rolling back to {releases.permanent} does — {killsText(rollbackTotal, null)}
          </summary>
          <ImpactPreview
            node={node}
            plan={rbPlan}
            stale={s.rbPlanFetching}
            fetching={s.rbPlanFetching}
            onRecompute={s.recomputeRbPlan}
            title={`Impact of rolling back to ${releases.permanent}`}
            acceptance={s.rbAcceptance}
            testid="rollback-impact-panel"
          />
        </details>
      ) : null}
    </section>
  );
}
