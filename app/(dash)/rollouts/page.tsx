"use client";
/** Rollouts: the newest rolling upgrades of groups, with their status; one page each for the live view. */
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { dateTime } from "../../_lib/format";
import { errorMessage, useTRPC } from "../../_lib/trpc";
import { StartRollout } from "./StartRollout";

export default function RolloutsPage() {
  const trpc = useTRPC();
  const list = useQuery(trpc.rollouts.list.queryOptions({ limit: 50 }, { refetchInterval: 3000 }));
  const rows = list.data ?? [];
  return (
    <div className="page">
      <div className="page-head">
        <h1>Rollouts</h1>
        <span className="page-meta">or from the CLI: beamdeck rollout start &lt;group&gt; &lt;vsn&gt; --yes</span>
      </div>
      <StartRollout />
      {list.error ? <div className="alert alert-error">{errorMessage(list.error)}</div> : null}
      <table className="grid">
        <thead>
          <tr>
            <th>Rollout</th>
            <th>Group</th>
            <th>To</th>
            <th>Status</th>
            <th className="num">Permanent</th>
            <th>Started</th>
            <th>By</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id} data-testid="rollout-row" data-rollout={r.id} data-status={r.status}>
              <td className="mono">
                <Link href={`/rollouts/${r.id}`}>{r.id}</Link>
              </td>
              <td>{r.group}</td>
              <td className="mono">{r.toVsn}</td>
              <td title={r.haltReason ?? undefined}>{r.status}</td>
              <td className="num">
                {r.permanent} of {r.nodes}
              </td>
              <td>{dateTime(new Date(r.createdAt).getTime())}</td>
              <td>{r.createdBy}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
