"use client";
/**
 * Observer's system view of one node: the overview over the last hour
 * (scheduler utilisation, memory by type, run queue, counts against their
 * limits), its ETS tables and its ports/sockets.
 */
import { useEffect } from "react";
import { NodeHeader } from "../_parts/NodeHeader";
import { EtsPanel } from "./_parts/EtsPanel";
import { OverviewPanel } from "./_parts/OverviewPanel";
import { PortsPanel } from "./_parts/PortsPanel";
import "./_parts/system.css";
import { useNodeParam } from "../_parts/useNodeParam";

export default function SystemPage() {
  const node = useNodeParam();
  useEffect(() => {
    document.title = `${node} · system · beamdeck`;
  }, [node]);
  return (
    <div className="page node-page" key={node}>
      <NodeHeader node={node} />
      <OverviewPanel node={node} />
      <div className="sys-split">
        <EtsPanel node={node} />
        <PortsPanel node={node} />
      </div>
    </div>
  );
}
