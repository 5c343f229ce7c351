"use client";
/**
 * The node's releases: what runs, what is permanent, and the pending
 * upgrades — releases unpacked but not installed, and release packages in
 * releases/ not unpacked yet (with Unpack for operators).
 */
import { bytes } from "../../../../../_lib/format";
import { OperatorOnly, useCanOperate, ViewerNote } from "./Guard";
import { Panel } from "./Bits";
import type { Releases } from "./types";

export function ReleasesPanel({
  releases,
  target,
  onSelect,
  onUnpack,
  busy,
}: {
  releases: Releases;
  target: string | null;
  onSelect: (vsn: string) => void;
  onUnpack: (vsn: string) => void;
  busy: boolean;
}) {
  const pkg = (vsn: string) => releases.packages.find((p) => p.vsn === vsn) ?? null;
  const can = useCanOperate();
  const installedNotPermanent = releases.current && releases.permanent && releases.current !== releases.permanent;
  return (
    <Panel
      title="Releases"
      testid="releases-panel"
      meta={
        <>
          {releases.name ?? "release"} · running <b data-testid="running-vsn">{releases.current ?? "–"}</b> · permanent <b data-testid="permanent-vsn">{releases.permanent ?? "–"}</b>
          {releases.stale ? " · release_handler busy: statuses from the RELEASES file" : ""}
        </>
      }
    >
      <div className="up-releases">
        <div className="up-rel-known">
          {releases.releases.map((r) => (
            <span key={r.vsn} className={`up-rel up-rel-${r.status}`} data-testid="release" data-vsn={r.vsn} data-status={r.status} title={r.apps.join(", ")}>
              <span className="mono">{r.vsn}</span> <span className="up-rel-status">{r.status}</span>
            </span>
          ))}
        </div>
        <table className="grid compact up-pending" data-testid="pending-table">
          <thead>
            <tr>
              <th>Pending upgrade</th>
              <th>State</th>
              <th>Package</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {releases.pending.map((p) => {
              const file = pkg(p.vsn);
              const selected = target === p.vsn;
              return (
                <tr key={p.vsn} className={selected ? "up-selected" : ""} data-testid="pending-row" data-vsn={p.vsn} data-state={p.state}>
                  <td className="mono">
                    <b>{p.vsn}</b>
                  </td>
                  <td data-testid="pending-state">
                    {p.state === "unpacked" ? <span className="up-state up-state-unpacked">unpacked</span> : <span className="up-state up-state-package">package, not unpacked</span>}
                  </td>
                  <td className="muted">{file ? `${file.file} · ${bytes(file.size)}` : (p.package ?? "–")}</td>
                  <td className="up-row-actions">
                    <button type="button" className={`btn${selected ? " btn-selected" : ""}`} data-testid="review" onClick={() => onSelect(p.vsn)} disabled={selected}>
                      {selected ? "Reviewing" : "Review"}
                    </button>
                    {p.state === "package" ? (
                      <OperatorOnly fallback={null}>
                        <button
                          type="button"
                          className="btn"
                          data-testid="unpack"
                          disabled={busy || Boolean(installedNotPermanent)}
                          onClick={() => onUnpack(p.vsn)}
                          title={
                            installedNotPermanent
                              ? `decide about ${releases.current} first (make it permanent or roll back)`
                              : "release_handler:unpack_release/1: extracts the package into lib/ and releases/"
                          }
                        >
                          Unpack {p.vsn}
                        </button>
                      </OperatorOnly>
                    ) : null}
                  </td>
                </tr>
              );
            })}
            {releases.pending.length === 0 ? (
              <tr>
                <td colSpan={4} className="empty" data-testid="no-pending">
                  No pending upgrade: no release is unpacked but not installed, and {releases.releasesDir} holds no package ({releases.name ?? "NAME"}-VSN.tar.gz) that is not unpacked.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
        {can === false && releases.pending.some((p) => p.state === "package") ? <ViewerNote>Unpacking a package is theirs to run; you can review its plan.</ViewerNote> : null}
      </div>
    </Panel>
  );
}
