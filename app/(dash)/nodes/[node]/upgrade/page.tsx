"use client";
/**
 * A node's hot upgrades — the reason beamdeck exists (issue 4; the forum
 * thread in shared/seed-thread.md). `useUpgradeState` holds what the page
 * knows and which stage it is in; this page switches between the stages:
 *
 * 1. the releases: running, permanent, pending (Unpack for packages);
 * 2. choose: for the chosen target (`?vsn=`, with the purge choices in
 *    `?post=` and `?pre=`), lint, brutal/soft per module, appup and relup,
 *    the impact preview and the guarded Install;
 * 3. decide: once installed and not yet permanent, the processes on old
 *    code, and make permanent or roll back, each stating its kills;
 * 4. predicted vs actual for the latest upgrade, then the history (pushed
 *    by the server, no polling).
 *
 * Viewers see all of it; the step buttons are replaced by an explanation,
 * and the server refuses their steps anyway. Errors are said in sentences
 * (app/_lib/error-text.ts).
 */
import { useEffect } from "react";
import { NodeHeader } from "../_parts/NodeHeader";
import { useNodeParam } from "../_parts/useNodeParam";
import { ErrorBox, Panel } from "./_parts/Bits";
import { ChooseStage } from "./_parts/ChooseStage";
import { DecisionStage } from "./_parts/DecisionStage";
import { HistoryPanel, fromVsnOf } from "./_parts/HistoryPanel";
import { PredictedVsActual } from "./_parts/PredictedVsActual";
import { ProgressLog } from "./_parts/ProgressLog";
import { ReleasesPanel } from "./_parts/ReleasesPanel";
import { type UpgradeState, useUpgradeState } from "./_parts/useUpgradeState";
import "./_parts/upgrade.css";

export default function UpgradePage() {
  const node = useNodeParam();
  useEffect(() => {
    document.title = `Upgrade · ${node} · beamdeck`;
  }, [node]);
  return (
    <div className="page node-page up-page" key={node}>
      <NodeHeader node={node} />
      <UpgradeView node={node} />
    </div>
  );
}

function UpgradeView({ node }: { node: string }) {
  const s = useUpgradeState(node);
  const { releases, stage } = s;
  if (stage === "unreadable") {
    return (
      <>
        <ErrorBox error={s.releasesError} what="Cannot read the node's releases" testid="releases-error" />
        {s.upgrades.length ? <HistoryPanel node={node} upgrades={s.upgrades} /> : null}
      </>
    );
  }
  if (!releases) return <div className="panel empty-state muted">Reading the node&apos;s releases…</div>;

  return (
    <div className="up-view" data-testid="upgrade-page" data-stage={stage === "decide" ? "installed" : "choose"}>
      <StepBanner s={s} />
      <ReleasesPanel releases={releases} target={s.target} onSelect={s.selectTarget} onUnpack={s.doUnpack} busy={s.busy} />
      <ErrorBox error={s.unpack.error} what="Unpack failed" onDismiss={() => s.unpack.reset()} testid="unpack-error" />
      {s.unknownVsn ? (
        <div className="alert alert-warn" data-testid="unknown-vsn" data-vsn={s.unknownVsn.vsn}>
          The link asks for {s.unknownVsn.vsn}, which is {s.unknownVsn.status ? `${s.unknownVsn.status} on this node, not pending` : "not a release of this node"}: nothing is chosen. Choose a pending
          release above.
        </div>
      ) : null}

      {stage === "decide" ? <DecisionStage s={s} /> : stage === "choose" && s.target ? <ChooseStage s={s} target={s.target} /> : null}

      {s.latest && stage !== "decide" ? (
        <Panel title={`Predicted vs actual — ${fromVsnOf(s.latest)} → ${s.latest.toVsn} (${s.latest.status})`} testid="pva-panel">
          <PredictedVsActual node={node} u={s.latest} />
        </Panel>
      ) : null}
      <ErrorBox error={s.historyError} what="The history is not live" testid="history-error" />
      <HistoryPanel node={node} upgrades={s.upgrades} />
    </div>
  );
}

/** What is being sent, the step this page follows, or a step someone else runs. */
function StepBanner({ s }: { s: UpgradeState }) {
  const { step } = s;
  return (
    <>
      {s.sending ? (
        <div className="up-progress up-progress-running" data-testid="sending">
          <div className="up-progress-head">
            <span className="up-spinner" aria-hidden="true" />
            <b>Sending {s.sending} to the server…</b> <span className="muted">it records the intent in the audit log, re-checks the impact, then hands the step to the agent</span>
          </div>
        </div>
      ) : step.active ? (
        <ProgressLog step={step.active} events={step.events} finished={step.finished} onDismiss={step.finished ? step.dismiss : undefined} />
      ) : null}
      {s.stepRunningOnServer && !step.active ? <div className="banner banner-down">A step is running on this node (started elsewhere); the history below follows it.</div> : null}
    </>
  );
}
