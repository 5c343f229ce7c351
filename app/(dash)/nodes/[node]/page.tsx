"use client";
/**
 * One node: header, mailbox chart, supervision tree, process table and a
 * process drawer. Everything stays live without a reload: `nodes.onNode`
 * says the node's data changed and the visible queries refetch (at most
 * once a second). When the agent goes away the last known data stays.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import Link from "next/link";
import { useEffect } from "react";
import { useStickyError, useThrottled } from "../../../_lib/hooks";
import { useUrlParam } from "../../../_lib/url-state";
import { beamdeckCode, useTRPC } from "../../../_lib/trpc";
import { MailboxChart } from "./_parts/MailboxChart";
import { NodeHeader } from "./_parts/NodeHeader";
import { ProcessDrawer } from "./_parts/ProcessDrawer";
import { ProcessTable } from "./_parts/ProcessTable";
import { SupervisionTree } from "./_parts/SupervisionTree";
import { useNodeParam } from "./_parts/useNodeParam";

const NO_LIVE_DATA: Record<string, string> = {
  BD_NODE_UNKNOWN: "Nodes appear here when their agent connects with an agent token (beamdeck agent-token create LABEL).",
  BD_NODE_OFFLINE: "The agent is not connected, and this server keeps a disconnected node's last data for one hour only (and not across restarts). It shows again when the agent reconnects.",
  BD_NODE_ELSEWHERE: "Another beamdeck instance holds this node's agent connection; its live data is there.",
};

export default function NodePage() {
  const node = useNodeParam();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  // The open drawer's pid lives in `?pid=` so a view can be linked to; another node has its own.
  const [selected, setSelected] = useUrlParam("pid", node);

  const refresh = useThrottled(() => {
    // Active queries refetch now; inactive ones are only marked stale.
    for (const key of [trpc.nodes.get.queryKey({ node }), trpc.procs.window.queryKey(), trpc.procs.history.queryKey({ node }), trpc.procs.get.queryKey()]) {
      void queryClient.invalidateQueries({ queryKey: key });
    }
  }, 1000);

  useSubscription(trpc.nodes.onNode.subscriptionOptions({ node }, { onData: refresh }));
  useSubscription(
    trpc.nodes.onNodes.subscriptionOptions(undefined, {
      onData: (change) => {
        if (change.node === node) {
          refresh();
          void queryClient.invalidateQueries({ queryKey: trpc.procs.tree.queryKey({ node }) });
        }
      },
    }),
  );

  useEffect(() => {
    document.title = `${node} · beamdeck`;
  }, [node]);

  // Without live state on this instance (never connected, gone for over an
  // hour, or held by another instance) there is nothing to chart or list.
  const info = useQuery(trpc.nodes.get.queryOptions({ node }, { refetchInterval: 10_000 }));
  const noLiveData = useStickyError(info);

  // Keyed by node: moving to another node starts every panel afresh. The
  // header keeps its place whatever the state, so it is never remounted.
  return (
    <div className="page node-page" key={node}>
      <NodeHeader node={node} />
      {noLiveData ? (
        <div className="panel empty-state" data-testid="node-no-live-data">
          <p>{NO_LIVE_DATA[beamdeckCode(noLiveData) ?? ""] ?? "This server holds no live data for this node."}</p>
          <p>
            <Link href="/">Back to all nodes</Link>
          </p>
        </div>
      ) : (
        <>
          <MailboxChart node={node} onSelect={setSelected} />
          <div className="split">
            <SupervisionTree node={node} selected={selected} onSelect={setSelected} />
            <ProcessTable node={node} selected={selected} onSelect={setSelected} />
          </div>
        </>
      )}
      {selected ? <ProcessDrawer node={node} pid={selected} onSelect={setSelected} onClose={() => setSelected(null)} /> : null}
    </div>
  );
}
