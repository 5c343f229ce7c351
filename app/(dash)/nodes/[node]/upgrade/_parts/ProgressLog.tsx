"use client";
/** What the node reports while a step runs, live (upgrades.onProgress). */
import { clock } from "../../../../../_lib/format";
import type { ActiveStep, ProgressEvent, StepOutcome } from "./useStep";

export function ProgressLog({ step, events, finished, onDismiss }: { step: ActiveStep; events: ProgressEvent[]; finished: StepOutcome | null; onDismiss?: () => void }) {
  const list = events;
  return (
    <div
      className={`up-progress${finished ? (finished.ok ? " up-progress-ok" : " up-progress-error") : " up-progress-running"}`}
      data-testid="progress"
      data-command={step.commandId}
      data-state={finished ? (finished.ok ? "ok" : "error") : "running"}
    >
      <div className="up-progress-head">
        {finished ? null : <span className="up-spinner" aria-hidden="true" />}
        <b>
          {step.action.replace("_", " ")} {step.vsn ?? ""}
        </b>{" "}
        {finished ? (finished.ok ? "done" : "failed") : "running on the node…"} <span className="muted mono">{step.commandId}</span>
        {onDismiss ? (
          <button type="button" className="link-btn up-dismiss" onClick={onDismiss} data-testid="progress-dismiss">
            dismiss
          </button>
        ) : null}
      </div>
      <ol className="up-progress-list">
        <li>
          <span className="muted">{clock(step.startedAt)}</span> requested
        </li>
        {list.map((e) => (
          <li key={`${e.kind}-${e.at}-${e.step ?? ""}-${e.message ?? ""}`} data-testid="progress-event" data-kind={e.kind} data-step={e.step ?? ""}>
            <span className="muted">{clock(e.at)}</span> {e.kind === "sent" ? "sent to the agent" : e.kind === "result" ? (e.ok ? "finished" : "failed") : (e.step ?? "")}
            {e.message ? <span className={e.kind === "result" && !e.ok ? " error-inline" : ""}> — {e.message}</span> : null}
          </li>
        ))}
      </ol>
      {finished && !finished.ok && finished.message && !list.some((e) => e.kind === "result") ? <div className="error-inline">{finished.message}</div> : null}
    </div>
  );
}
