"use client";
/**
 * Nodes: every node that has ever connected, with its connection state,
 * versions, process count and biggest mailbox. Connects and disconnects
 * arrive over `nodes.onNodes`; counts refresh every few seconds.
 */
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Atom, Pid } from "../_components/Names";
import { int } from "../_lib/format";
import { useNow } from "../_lib/hooks";
import { useRefetchOnNodeChanges } from "../_lib/use-nodes-changes";
import { errorMessage, useTRPC } from "../_lib/trpc";
import { StatusRow } from "../_components/ListParts";
import { NodeStatus } from "../_components/NodeStatus";

export default function NodesPage() {
  const trpc = useTRPC();
  const now = useNow(5000);
  const list = useQuery(trpc.nodes.list.queryOptions(undefined, { refetchInterval: 3000 }));
  useRefetchOnNodeChanges(trpc.nodes.list.queryKey());

  const rows = list.data ?? [];
  const connected = rows.filter((r) => r.connected).length;
  return (
    <div className="page">
      <div className="page-head">
        <h1>Nodes</h1>
        <span className="page-meta" data-testid="nodes-summary">
          {list.data ? `${connected} connected · ${rows.length - connected} disconnected` : ""}
        </span>
      </div>
      {list.error ? <div className="alert alert-error">{errorMessage(list.error)}</div> : null}
      <div className="panel">
        <table className="grid" data-testid="nodes-table">
          <thead>
            <tr>
              <th>Node</th>
              <th>Status</th>
              <th>OTP</th>
              <th>ERTS</th>
              <th>Agent</th>
              <th>Release</th>
              <th className="num">Processes</th>
              <th className="num" title="processes still running old code of a module (after a soft purge)">
                Old code
              </th>
              <th className="num">Top mailbox</th>
              <th>Top mailbox process</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((n) => (
              <tr key={n.name} data-testid="node-row" data-node={n.name} data-connected={n.connected ? "true" : "false"}>
                <td>
                  <Link className="node-link" href={`/nodes/${encodeURIComponent(n.name)}`}>
                    {n.name}
                  </Link>
                </td>
                <td>
                  <NodeStatus connected={n.connected} instance={n.instance} lastSeenAt={n.lastSeenAt} now={now} />
                </td>
                <td>{n.otpRelease ?? "–"}</td>
                <td className="mono">{n.ertsVersion ?? "–"}</td>
                <td className="mono">{n.agentVersion ?? "–"}</td>
                <td className="mono" data-testid="node-release">
                  {n.release ? `${n.release.name} ${n.release.vsn}` : "–"}
                </td>
                <td className="num" data-testid="node-proc-count">
                  {int(n.processCount)}
                </td>
                <td className="num" data-testid="node-old-code" data-value={n.oldCode ?? ""}>
                  {n.oldCode === null ? "–" : n.oldCode > 0 ? <span className="flag flag-warn">{int(n.oldCode)}</span> : "0"}
                </td>
                <td className="num" data-testid="node-top-mailbox">
                  {n.topMailbox ? int(n.topMailbox.mailbox) : "–"}
                </td>
                <td>
                  {n.topMailbox ? (
                    <Link className="cell-proc" href={`/nodes/${encodeURIComponent(n.name)}?pid=${encodeURIComponent(n.topMailbox.pid)}`} data-testid="node-top-mailbox-link" title="open this process">
                      <Pid pid={n.topMailbox.pid} />
                      {n.topMailbox.name ? <Atom text={n.topMailbox.name} compact /> : null}
                    </Link>
                  ) : (
                    <span className="muted">–</span>
                  )}
                </td>
              </tr>
            ))}
            <StatusRow pending={list.isPending} empty={Boolean(list.data) && rows.length === 0} colSpan={10}>
              No node has connected yet. Create an agent token with <code>beamdeck agent-token create LABEL</code> and start a node with the agent.
            </StatusRow>
          </tbody>
        </table>
      </div>
    </div>
  );
}
