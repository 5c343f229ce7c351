"use client";
/** The node's ETS tables, largest first (asked of the agent; at most 1000 rows). */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { ETS_SORTS } from "../../../../../../server/agents/system-views";
import { bytes, elixirAlias, int } from "../../../../../_lib/format";
import type { RouterOutputs } from "../../../../../_lib/types";
import { useTRPC } from "../../../../../_lib/trpc";
import { AgentList, type Column, ownerText } from "./AgentList";

type Table = RouterOutputs["system"]["ets"]["tables"][number];

const COLUMNS: Column<Table>[] = [
  { head: "table", cell: (t) => elixirAlias(t.name) ?? t.name, title: (t) => t.id },
  { head: "type", cell: (t) => t.type },
  { head: "protection", cell: (t) => t.protection },
  { head: "size", num: true, cell: (t) => int(t.size) },
  { head: "memory", num: true, cell: (t) => bytes(t.memory) },
  { head: "owner", cell: (t) => ownerText(t.ownerName, t.owner) },
];

export function EtsPanel({ node }: { node: string }) {
  const trpc = useTRPC();
  const [sort, setSort] = useState<(typeof ETS_SORTS)[number]>("memory");
  const q = useQuery(trpc.system.ets.queryOptions({ node, sort, limit: 200 }, { refetchInterval: 10_000 }));
  return (
    <AgentList
      title="ETS tables"
      testid="ets"
      rowTestid="ets-row"
      sorts={ETS_SORTS}
      sort={sort}
      onSort={setSort}
      list={q.data ? { ...q.data, rows: q.data.tables } : undefined}
      error={q.error}
      pending={q.isPending}
      columns={COLUMNS}
      rowData={(t) => ({ "data-name": t.name, "data-size": t.size })}
    />
  );
}
