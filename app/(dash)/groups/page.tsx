"use client";
/**
 * Groups: the nodes of each group (the agent's BEAMDECK_GROUP, by default
 * its release name), the release each runs, old code, and whether the
 * group has drifted onto more than one release.
 */
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { NodeStatus } from "../../_components/NodeStatus";
import { int } from "../../_lib/format";
import { useNow } from "../../_lib/hooks";
import { useRefetchOnNodeChanges } from "../../_lib/use-nodes-changes";
import { errorMessage, useTRPC } from "../../_lib/trpc";

export default function GroupsPage() {
  const trpc = useTRPC();
  const now = useNow(5000);
  const list = useQuery(trpc.groups.list.queryOptions(undefined, { refetchInterval: 5000 }));
  useRefetchOnNodeChanges(trpc.groups.list.queryKey());
  const groups = list.data ?? [];
  return (
    <div className="page">
      <div className="page-head">
        <h1>Groups</h1>
        <span className="page-meta" data-testid="groups-summary">
          {list.data ? `${groups.length} group(s) · ${groups.filter((g) => g.drift).length} drifted` : ""}
        </span>
      </div>
      {list.error ? <div className="alert alert-error">{errorMessage(list.error)}</div> : null}
      {groups.map((g) => (
        <div className="panel" key={g.name} data-testid="group" data-group={g.name} data-drift={g.drift ? "true" : "false"}>
          <div className="panel-head">
            <h2>{g.name}</h2>
            <span className="page-meta">
              {g.connected} of {g.nodes.length} connected · {g.versions.length ? g.versions.join(" / ") : "no release"}
              {g.oldCode > 0 ? ` · ${int(g.oldCode)} process(es) on old code` : ""}
            </span>
            {g.drift ? (
              <span className="status status-down" data-testid="group-drift" title="the connected nodes run different releases; the version_drift alert rule pages when it lasts">
                drift: {g.versions.length} releases
              </span>
            ) : null}
          </div>
          <table className="grid">
            <thead>
              <tr>
                <th>Node</th>
                <th>Status</th>
                <th>Release</th>
                <th className="num">Old code</th>
                <th>OTP</th>
              </tr>
            </thead>
            <tbody>
              {g.nodes.map((n) => (
                <tr key={n.name} data-testid="group-node" data-node={n.name}>
                  <td>
                    <Link className="node-link" href={`/nodes/${encodeURIComponent(n.name)}`}>
                      {n.name}
                    </Link>
                  </td>
                  <td>
                    <NodeStatus connected={n.connected} instance={n.instance} lastSeenAt={n.lastSeenAt} now={now} />
                  </td>
                  <td className="mono" data-testid="group-node-release">
                    {n.release ? `${n.release.name} ${n.release.vsn}` : "–"}
                  </td>
                  <td className="num">{n.oldCode === null ? "–" : int(n.oldCode)}</td>
                  <td>{n.otpRelease ?? "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}
