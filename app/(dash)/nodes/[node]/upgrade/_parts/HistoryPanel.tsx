"use client";
/** Every upgrade of this node, newest first: who, what, with which purges, each step's outcome. */
import { Fragment, useState } from "react";
import { Atom } from "../../../../../_components/Names";
import { dateTime } from "../../../../../_lib/format";
import { Panel } from "./Bits";
import { PredictedVsActual } from "./PredictedVsActual";
import { commandOutcome, relupDefaults, type Upgrade } from "./types";

/** The server's `fromVsn` is "?" when it could not read the running release; the preview knows it. */
export function fromVsnOf(u: Upgrade): string {
  if (u.fromVsn && u.fromVsn !== "?") return u.fromVsn;
  return u.preview?.from ?? u.fromVsn;
}

/** The purges the upgrade ran with; a setting the relup itself writes is marked so. */
function Choices({ u }: { u: Upgrade }) {
  const defaults = relupDefaults(u.preview?.relup.original);
  const rows = [
    ...Object.entries(u.purge).map(([m, v]) => ({ m, field: "post" as const, v, dflt: defaults.get(m)?.post })),
    ...Object.entries(u.prePurge).map(([m, v]) => ({ m, field: "pre" as const, v, dflt: defaults.get(m)?.pre })),
  ];
  if (rows.length === 0) return <span className="muted">as the relup writes</span>;
  return (
    <span className="up-choices">
      {rows.map((r) => (
        <span key={`${r.field}-${r.m}`} className="up-choice">
          <Atom text={r.m} compact /> {r.field} <b className={`up-purge-inline up-purge-inline-${r.v}`}>{r.v}</b>
          {r.dflt === r.v ? <span className="muted">(as the relup)</span> : r.dflt ? <span className="up-changed-note">(relup: {r.dflt})</span> : null}
        </span>
      ))}
    </span>
  );
}

const STATUS_CLASS: Record<string, string> = { ok: "up-cmd-ok", error: "up-cmd-error", sent: "up-cmd-running", running: "up-cmd-running", no_outcome: "up-cmd-error" };

export function HistoryPanel({ node, upgrades }: { node: string; upgrades: Upgrade[] }) {
  const [open, setOpen] = useState<string | null>(null);
  return (
    <Panel title="Upgrade history" testid="history-panel" meta={`${upgrades.length} upgrade(s), newest first`}>
      {upgrades.length === 0 ? (
        <p className="muted">No upgrade has been installed on this node through beamdeck.</p>
      ) : (
        <table className="grid compact up-history">
          <thead>
            <tr>
              <th>Started</th>
              <th>By</th>
              <th>Release</th>
              <th>Status</th>
              <th>Purge choices</th>
              <th>Steps</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {upgrades.map((u) => (
              <Fragment key={u.id}>
                <tr data-testid="history-row" data-upgrade={u.id} data-status={u.status}>
                  <td className="nowrap">{dateTime(new Date(u.createdAt).getTime())}</td>
                  <td>{u.createdBy}</td>
                  <td className="mono nowrap">
                    {fromVsnOf(u)} → {u.toVsn}
                  </td>
                  <td>
                    <span className={`up-ustatus up-ustatus-${u.status}`}>{u.status}</span>
                  </td>
                  <td>
                    <Choices u={u} />
                  </td>
                  <td>
                    {u.commands.map((c) => {
                      const { error } = commandOutcome(c);
                      return (
                        <div key={c.id} className="up-cmd" data-testid="history-command" data-action={c.action} data-status={c.status}>
                          <span className={STATUS_CLASS[c.status] ?? ""}>
                            {c.action} {c.status}
                          </span>{" "}
                          <span className="muted">
                            {c.requestedBy} · {dateTime(new Date(c.createdAt).getTime())}
                          </span>
                          {error ? <div className="error-inline">{error.message}</div> : null}
                        </div>
                      );
                    })}
                  </td>
                  <td>
                    <button type="button" className="link-btn" onClick={() => setOpen(open === u.id ? null : u.id)} data-testid="history-toggle">
                      {open === u.id ? "hide" : "predicted vs actual"}
                    </button>
                  </td>
                </tr>
                {open === u.id ? (
                  <tr className="up-history-detail">
                    <td colSpan={7}>
                      <PredictedVsActual node={node} u={u} />
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
    </Panel>
  );
}
