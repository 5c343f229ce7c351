"use client";
/** The node's ETS tables, largest first (asked of the agent; at most 1000 rows). */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { ETS_SORTS } from "../../../../../../server/agents/system-views";
import { bytes, elixirAlias, int } from "../../../../../_lib/format";
import { errorMessage, useTRPC } from "../../../../../_lib/trpc";
import { ListHead } from "./ListHead";

const owner = (name: string | null, pid: string | null) => (name ? `${elixirAlias(name) ?? name} ${pid ?? ""}` : (pid ?? "-"));

export function EtsPanel({ node }: { node: string }) {
  const trpc = useTRPC();
  const [sort, setSort] = useState<(typeof ETS_SORTS)[number]>("memory");
  const q = useQuery(trpc.system.ets.queryOptions({ node, sort, limit: 200 }, { refetchInterval: 10_000 }));
  const r = q.data;
  return (
    <section className="panel" data-testid="ets-panel">
      <ListHead title="ETS tables" testid="ets" counts={r ? { shown: r.tables.length, total: r.total, partial: r.partial, scanned: r.scanned } : null} sorts={ETS_SORTS} sort={sort} onSort={setSort} />
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
