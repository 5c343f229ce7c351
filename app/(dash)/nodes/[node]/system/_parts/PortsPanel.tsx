"use client";
/** The node's ports and sockets, busiest first (asked of the agent; at most 1000 rows). */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { PORT_SORTS } from "../../../../../../server/agents/system-views";
import { bytes, elixirAlias, int } from "../../../../../_lib/format";
import { errorMessage, useTRPC } from "../../../../../_lib/trpc";
import { ListHead } from "./ListHead";

export function PortsPanel({ node }: { node: string }) {
  const trpc = useTRPC();
  const [sort, setSort] = useState<(typeof PORT_SORTS)[number]>("io");
  const q = useQuery(trpc.system.ports.queryOptions({ node, sort, limit: 200 }, { refetchInterval: 10_000 }));
  const r = q.data;
  return (
    <section className="panel" data-testid="ports-panel">
      <ListHead
        title="Ports and sockets"
        testid="ports"
        counts={r ? { shown: r.ports.length, total: r.total, partial: r.partial, scanned: r.scanned } : null}
        sorts={PORT_SORTS}
        sort={sort}
        onSort={setSort}
      />
      {q.error ? <div className="panel-foot error-inline">{errorMessage(q.error)}</div> : null}
      <div className="sys-table-scroll">
        <table className="grid compact" data-testid="ports-table">
          <thead>
            <tr>
              <th>port</th>
              <th>kind</th>
              <th>local</th>
              <th>peer</th>
              <th className="num">in</th>
              <th className="num">out</th>
              <th>owner</th>
            </tr>
          </thead>
          <tbody>
            {r?.ports.map((p) => (
              <tr key={p.id} data-testid="port-row" data-kind={p.kind} data-peer={p.peer ?? ""}>
                <td title={p.name}>{p.id}</td>
                <td>{p.kind === "spawn" || p.kind === "other" ? `${p.kind}: ${p.name.slice(0, 40)}` : p.kind}</td>
                <td>{p.local ?? "-"}</td>
                <td>{p.peer ?? "-"}</td>
                <td className="num">{bytes(p.input)}</td>
                <td className="num">{bytes(p.output)}</td>
                <td>{p.ownerName ? `${elixirAlias(p.ownerName) ?? p.ownerName} ${p.owner ?? ""}` : (p.owner ?? "-")}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {q.isPending ? <div className="empty">Loading…</div> : null}
        {r && r.ports.length === 0 ? <div className="empty">{int(r.total)} ports</div> : null}
      </div>
    </section>
  );
}
