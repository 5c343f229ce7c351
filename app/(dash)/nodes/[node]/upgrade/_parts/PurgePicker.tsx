"use client";
/**
 * Brutal or soft, per module. Post-purge in front (it decides who dies at
 * make_permanent); pre-purge under "advanced" (it only matters when the
 * module still has old code from an earlier soft purge).
 */
import { Atom } from "../../../../../_components/Names";
import { Panel } from "./Bits";
import type { Purge, PurgeMap } from "./types";

export interface PickerModule {
  module: string;
  app: string | null;
  op: string;
  hasOldCode: boolean;
  /** As the relup writes it. */
  defaultPre: Purge;
  defaultPost: Purge;
}

const POST_HELP: Record<Purge, string> = {
  brutal: "make_permanent kills every process still on the old code",
  soft: "processes on the old code keep running it; it is purged once none uses it",
};
const PRE_HELP: Record<Purge, string> = {
  brutal: "install kills the processes still on code left by an earlier upgrade",
  soft: "install refuses ({error, {old_processes, M}}) while any process runs that code",
};

function Seg({ value, dflt, onChange, testid, help }: { value: Purge; dflt: Purge; onChange: (v: Purge) => void; testid: string; help: Record<Purge, string> }) {
  return (
    <fieldset className="seg up-seg" data-testid={testid} data-value={value}>
      {(["brutal", "soft"] as const).map((v) => (
        <button
          key={v}
          type="button"
          aria-pressed={value === v}
          className={`seg-btn up-seg-${v}${value === v ? " active" : ""}`}
          data-testid={`${testid}-${v}`}
          title={help[v]}
          onClick={() => onChange(v)}
        >
          {v}
          {dflt === v ? <span className="up-seg-default"> · relup</span> : null}
        </button>
      ))}
    </fieldset>
  );
}

export function PurgePicker({
  modules,
  post,
  pre,
  onPost,
  onPre,
  recomputing,
}: {
  modules: PickerModule[];
  post: PurgeMap;
  pre: PurgeMap;
  onPost: (module: string, v: Purge) => void;
  onPre: (module: string, v: Purge) => void;
  recomputing: boolean;
}) {
  const anyOld = modules.some((m) => m.hasOldCode);
  const preChanged = Object.keys(pre).length > 0;
  return (
    <Panel title="Purge, per module" testid="purge-panel" meta={recomputing ? "recomputing the preview…" : "the preview follows your choices"}>
      <table className="grid compact up-picker">
        <thead>
          <tr>
            <th>Module</th>
            <th>App</th>
            <th>Post-purge (at make_permanent)</th>
          </tr>
        </thead>
        <tbody>
          {modules.map((m) => {
            const v = post[m.module] ?? m.defaultPost;
            return (
              <tr key={m.module} data-testid="purge-row" data-module={m.module}>
                <td>
                  <Atom text={m.module} />
                  {m.op !== "load" ? <span className="muted"> ({m.op})</span> : null}
                </td>
                <td className="muted">{m.app ?? "–"}</td>
                <td>
                  <Seg value={v} dflt={m.defaultPost} onChange={(x) => onPost(m.module, x)} testid="post-purge" help={POST_HELP} />
                  <div className="up-picker-help muted">{POST_HELP[v]}</div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <details className="up-advanced" open={anyOld || preChanged} data-testid="advanced">
        <summary>
          Advanced: pre-purge{" "}
          {anyOld ? (
            <span className="up-warn-text">— {modules.filter((m) => m.hasOldCode).length} module(s) still have old code, so it matters now</span>
          ) : (
            <span className="muted">— matters only for modules that still have old code (none now)</span>
          )}
        </summary>
        <table className="grid compact up-picker">
          <tbody>
            {modules.map((m) => {
              const v = pre[m.module] ?? m.defaultPre;
              return (
                <tr key={m.module} data-testid="pre-purge-row" data-module={m.module}>
                  <td>
                    <Atom text={m.module} compact />
                    {m.hasOldCode ? <span className="up-flag-old">has old code</span> : null}
                  </td>
                  <td>
                    <Seg value={v} dflt={m.defaultPre} onChange={(x) => onPre(m.module, x)} testid="pre-purge" help={PRE_HELP} />
                    <div className="up-picker-help muted">{PRE_HELP[v]}</div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </details>
    </Panel>
  );
}
