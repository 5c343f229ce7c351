"use client";
/**
 * The exact processes still on old code, per module, as the node answers
 * `erlang:check_process_code/2` now (refreshed every second by the page),
 * and what make_permanent does to them under the module's post-purge.
 */
import { Atom, Mfa } from "../../../../../_components/Names";
import { clock } from "../../../../../_lib/format";
import { ErrorBox, FateBadge, InitialCall, Panel, PidLink, procs } from "./Bits";
import type { OldCode, Purge } from "./types";

export function OldCodePanel({
  node,
  oldCode,
  postOf,
  afterInstall,
  error,
}: {
  node: string;
  oldCode: OldCode | undefined;
  postOf: (module: string) => Purge | null;
  afterInstall: boolean;
  error?: unknown;
}) {
  const modules = (oldCode?.modules ?? []).filter((m) => m.hasOldCode || afterInstall);
  return (
    <Panel
      title="Still on old code"
      testid="old-code-panel"
      meta={
        oldCode ? (
          <span data-testid="old-code-meta" data-total={oldCode.total}>
            {procs(oldCode.total)} · checked {clock(oldCode.at)} with check_process_code over {oldCode.processes} processes · every second
          </span>
        ) : (
          "checking…"
        )
      }
    >
      <ErrorBox error={error} what="Cannot read who runs old code" testid="old-code-error" />
      {oldCode && modules.length === 0 ? <p className="muted">No module has old code: every process runs the current code.</p> : null}
      {modules.map((m) => {
        const post = postOf(m.module);
        return (
          <div key={m.module} className="up-group" data-testid="old-code-module" data-module={m.module} data-count={m.count}>
            <div className="up-group-head">
              <Atom text={m.module} /> <span>{m.hasOldCode ? procs(m.count) + " on its old code" : "no old code"}</span>
              {post ? (
                <span className="muted">
                  post-purge <b className={`up-purge-inline up-purge-inline-${post}`}>{post}</b>:{" "}
                  {post === "brutal" ? "make_permanent kills them" : "they keep running the old code after make_permanent"}
                </span>
              ) : null}
            </div>
            {m.processes.length ? (
              <table className="grid compact up-procs">
                <tbody>
                  {m.processes.map((p) => (
                    <tr key={p.pid} data-testid="old-code-row" data-pid={p.pid}>
                      <td className="up-shrink">{post === "brutal" ? <FateBadge fate="killed" when="make_permanent" /> : post === "soft" ? <FateBadge fate="stays_on_old_code" /> : null}</td>
                      <td className="up-shrink">
                        <PidLink node={node} pid={p.pid} />
                      </td>
                      <td className="up-shrink">{p.name ? <Atom text={p.name} compact /> : <InitialCall mfa={p.initialCall} />}</td>
                      <td className="muted up-fill">
                        now in <Mfa mfa={p.currentFunction} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : null}
            {m.truncated ? <div className="muted">… and more (the agent lists at most 800)</div> : null}
          </div>
        );
      })}
    </Panel>
  );
}
