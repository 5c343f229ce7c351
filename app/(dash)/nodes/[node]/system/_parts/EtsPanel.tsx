"use client";
/** The node's ETS tables, largest first (asked of the agent; at most 1000 rows). */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { ETS_SORTS } from "../../../../../../server/agents/system-views";
import { bytes, elixirAlias, int } from "../../../../../_lib/format";
import { errorMessage, useTRPC } from "../../../../../_lib/trpc";

const owner = (name: string | null, pid: string | null) => (name ? `${elixirAlias(name) ?? name} ${pid ?? ""}` : (pid ?? "-"));

export function EtsPanel({ node }: { node: string }) {
  const trpc = useTRPC();
  const [sort, setSort] = useState<(typeof ETS_SORTS)[number]>("memory");
  const q = useQuery(trpc.system.ets.queryOptions({ node, sort, limit: 200 }, { refetchInterval: 10_000 }));
  const r = q.data;
  return (
    <section className="panel" data-testid="ets-panel">
      <div className="panel-head">
        <h2>ETS tables</h2>
        <span className="panel-meta" data-testid="ets-count">
          {r ? `${r.tables.length} of ${int(r.total)}${r.partial ? ` (first ${int(r.scanned)} scanned)` : ""}` : ""}
        </span>
        <div className="spacer" />
        <div className="seg" role="group" aria-label="Sort ETS tables by">
          {ETS_SORTS.map((s) => (
            <button key={s} type="button" className={s === sort ? "seg-btn active" : "seg-btn"} onClick={() => setSort(s)} data-testid={`ets-sort-${s}`}>
              {s}
            </button>
          ))}
        </div>
      </div>
      {q.error ? <div className="panel-foot error-inline">{errorMessage(q.error)}</div> : null}
      <div className="sys-table-scroll">
        <table className="grid compact" data-testid="ets-table">
          <thead>
            <tr>
              <th>table</th>
              <th>type</th>
              <th>protection</th>
              <th className="num">size</th>
              <th className="num">memory</th>
              <th>owner</th>
            </tr>
          </thead>
          <tbody>
            {r?.tables.map((t) => (
              <tr key={t.id} data-testid="ets-row" data-name={t.name} data-size={t.size}>
                <td title={t.id}>{elixirAlias(t.name) ?? t.name}</td>
                <td>{t.type}</td>
                <td>{t.protection}</td>
                <td className="num">{int(t.size)}</td>
                <td className="num">{bytes(t.memory)}</td>
                <td>{owner(t.ownerName, t.owner)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {q.isPending ? <div className="empty">Loading…</div> : null}
      </div>
    </section>
  );
}
