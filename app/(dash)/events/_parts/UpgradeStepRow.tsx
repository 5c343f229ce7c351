"use client";
/** An upgrade step in a node's events timeline (`events.upgradeSteps`), between the events of its time. */
import { clock, dateTime } from "../../../_lib/format";
import type { RouterOutputs } from "../../../_lib/types";

export type UpgradeStep = RouterOutputs["events"]["upgradeSteps"][number];

export function UpgradeStepRow({ step, node }: { step: UpgradeStep; node: string }) {
  return (
    <tr className="ev-upgrade" data-testid="event-upgrade-step" data-action={step.action} data-status={step.status}>
      <td className="nowrap" title={dateTime(step.at)}>
        {clock(step.at)}
      </td>
      <td>{node}</td>
      <td>
        <span className="kind-tag kind-upgrade">upgrade {step.action.replace("_", " ")}</span>
      </td>
      <td>{step.vsn ? `to ${step.vsn}` : ""}</td>
      <td />
      <td className="muted">by {step.requestedBy}</td>
      <td>{step.status}</td>
      <td>
        <a href={`/nodes/${encodeURIComponent(node)}/upgrade`} className="muted">
          upgrade page
        </a>
      </td>
    </tr>
  );
}
