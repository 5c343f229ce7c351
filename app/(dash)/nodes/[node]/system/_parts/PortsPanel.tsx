"use client";
/** The node's ports and sockets, busiest first (asked of the agent; at most 1000 rows). */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { PORT_SORTS } from "../../../../../../server/agents/system-views";
import { bytes, int } from "../../../../../_lib/format";
import type { RouterOutputs } from "../../../../../_lib/types";
import { useTRPC } from "../../../../../_lib/trpc";
import { AgentList, type Column, ownerText } from "./AgentList";

type Port = RouterOutputs["system"]["ports"]["ports"][number];

const COLUMNS: Column<Port>[] = [
  { head: "port", cell: (p) => p.id, title: (p) => p.name },
  { head: "kind", cell: (p) => (p.kind === "spawn" || p.kind === "other" ? `${p.kind}: ${p.name.slice(0, 40)}` : p.kind) },
  { head: "local", cell: (p) => p.local ?? "-" },
  { head: "peer", cell: (p) => p.peer ?? "-" },
  { head: "in", num: true, cell: (p) => bytes(p.input) },
  { head: "out", num: true, cell: (p) => bytes(p.output) },
  { head: "owner", cell: (p) => ownerText(p.ownerName, p.owner) },
];

export function PortsPanel({ node }: { node: string }) {
  const trpc = useTRPC();
  const [sort, setSort] = useState<(typeof PORT_SORTS)[number]>("io");
  const q = useQuery(trpc.system.ports.queryOptions({ node, sort, limit: 200 }, { refetchInterval: 10_000 }));
  return (
    <AgentList
      title="Ports and sockets"
      testid="ports"
      rowTestid="port-row"
      sorts={PORT_SORTS}
      sort={sort}
      onSort={setSort}
      list={q.data ? { ...q.data, rows: q.data.ports } : undefined}
      error={q.error}
      pending={q.isPending}
      columns={COLUMNS}
      rowData={(p) => ({ "data-kind": p.kind, "data-peer": p.peer ?? "" })}
      empty={(total) => `${int(total)} ports`}
    />
  );
}
