"use client";
/**
 * The audit log: every login, user and token change, alert acknowledgement,
 * rule change and upgrade step, newest first; the hash chain's status on
 * top; filters (actor, node, action prefix, time range) that the CSV and
 * JSON exports carry too.
 */
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { TimeRangePicker } from "../../_components/TimeRangePicker";
import { TimeHeader } from "../../_components/AsOf";
import { dateTime, int } from "../../_lib/format";
import { useDebounced } from "../../_lib/hooks";
import { errorMessage, useTRPC, useTRPCClient } from "../../_lib/trpc";
import type { RouterInputs } from "../../_lib/types";
import { useUrlState } from "../../_lib/url-state";
import { ListFoot, StatusRow } from "../../_components/ListParts";
import { presetRange, type RangeKey, type TimeRange } from "../../_lib/when";
import { AuditDrawer, OutcomeChip } from "./_parts/AuditDrawer";
import { ChainStatus } from "./_parts/ChainStatus";
import { KNOWN_ACTIONS, summary } from "./_parts/summary";

type Filter = Omit<RouterInputs["audit"]["list"], "limit" | "before">;
const KEYS = ["actor", "node", "action", "range", "from", "to", "id"] as const;
const PAGE = 100;

function rangeOf(s: { range: string; from: string; to: string }): TimeRange {
  if (s.range === "custom") return { key: "custom", from: s.from || null, to: s.to || null };
  return presetRange((s.range || "all") as RangeKey);
}

function exportHref(format: "csv" | "json", f: Filter): string {
  const q = new URLSearchParams({ format });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, String(v));
  return `/api/audit/export?${q}`;
}

export default function AuditPage() {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const [s, set] = useUrlState(KEYS);
  const [range, setRange] = useState<TimeRange>(() => rangeOf(s));
  const actor = useDebounced(s.actor, 300);
  const action = useDebounced(s.action, 300);
  const nodes = useQuery(trpc.nodes.list.queryOptions());

  useEffect(() => {
    document.title = "Audit · beamdeck";
  }, []);

  const filter: Filter = useMemo(
    () => ({
      ...(actor ? { actor } : {}),
      ...(s.node ? { node: s.node } : {}),
      ...(action ? { action } : {}),
      ...(range.from ? { from: range.from } : {}),
      ...(range.to ? { to: range.to } : {}),
    }),
    [actor, s.node, action, range.from, range.to],
  );

  const list = useInfiniteQuery({
    queryKey: [...trpc.audit.list.pathKey(), { input: filter, type: "infinite" }],
    queryFn: ({ pageParam }) => client.audit.list.query({ ...filter, limit: PAGE, ...(pageParam ? { before: pageParam } : {}) }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.nextBefore,
    refetchInterval: 10_000,
  });
  const rows = list.data?.pages.flatMap((p) => p.entries) ?? [];
  const onRange = (r: TimeRange) => {
    setRange(r);
    set({ range: r.key === "all" ? null : r.key, from: r.key === "custom" ? r.from : null, to: r.key === "custom" ? r.to : null });
  };
  const anyFilter = Boolean(s.actor || s.node || s.action || range.key !== "all");

  return (
    <div className="page audit-page">
      <div className="page-head">
        <h1>Audit log</h1>
        <span className="page-meta">append-only, hash-chained; intents are written before an action is sent, outcomes after</span>
      </div>
      <ChainStatus onOpen={(id) => set({ id })} />
      <div className="panel">
        <div className="filters" data-testid="audit-filters">
          <label className="inline-field">
            <span>Actor</span>
            <input className="ctl" placeholder="contains… (user:alice, token:…)" value={s.actor} onChange={(e) => set({ actor: e.target.value || null })} data-testid="audit-filter-actor" />
          </label>
          <label className="inline-field">
            <span>Node</span>
            <select className="ctl" value={s.node} onChange={(e) => set({ node: e.target.value || null })} data-testid="audit-filter-node">
              <option value="">any</option>
              {[...new Set([...(nodes.data ?? []).map((n) => n.name), ...(s.node ? [s.node] : [])])].map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <label className="inline-field">
            <span>Action</span>
            <input
              className="ctl narrow"
              list="audit-actions"
              placeholder="starts with…"
              value={s.action}
              onChange={(e) => set({ action: e.target.value || null })}
              data-testid="audit-filter-action"
            />
            <datalist id="audit-actions">
              {KNOWN_ACTIONS.map((a) => (
                <option key={a} value={a} />
              ))}
            </datalist>
          </label>
          <TimeRangePicker value={range} onChange={onRange} testid="audit-range" />
          {anyFilter ? (
            <button
              type="button"
              className="link-btn"
              onClick={() => {
                set({ actor: null, node: null, action: null, range: null, from: null, to: null });
                setRange(presetRange("all"));
              }}
              data-testid="audit-filter-clear"
            >
              clear filters
            </button>
          ) : null}
          <span className="spacer" />
          <span className="export">
            Export{anyFilter ? " (filtered)" : ""}:
            <a className="btn" href={exportHref("csv", filter)} download data-testid="export-csv">
              CSV
            </a>
            <a className="btn" href={exportHref("json", filter)} download data-testid="export-json">
              JSON
            </a>
          </span>
        </div>
        {list.error ? <div className="alert alert-error">{errorMessage(list.error)}</div> : null}
        <table className="grid audit" data-testid="audit-table">
          <thead>
            <tr>
              <th className="num">#</th>
              <TimeHeader label="When" />
              <th>Actor</th>
              <th>Action</th>
              <th>Node</th>
              <th>Target</th>
              <th>Outcome</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr
                key={e.id}
                className={`clickable ${s.id === e.id ? "selected" : ""} ${e.pendingOutcome ? "row-pending" : ""}`}
                onClick={() => set({ id: e.id })}
                data-testid="audit-row"
                data-id={e.id}
                data-actor={e.actor}
                data-action={e.action}
                data-outcome={e.outcome ?? ""}
                data-pending={e.pendingOutcome ? "true" : "false"}
              >
                <td className="num mono muted">{e.id}</td>
                <td className="nowrap">{dateTime(Date.parse(e.at))}</td>
                <td className="mono nowrap">{e.actor}</td>
                <td className="mono nowrap">{e.action}</td>
                <td className="mono">{e.node ?? ""}</td>
                <td className="mono target">{e.target ?? ""}</td>
                <td>
                  <OutcomeChip outcome={e.outcome} pending={e.pendingOutcome} intent={e.action.startsWith("upgrade.") && !e.intentId && !e.outcome} />
                  {e.intentId ? <span className="muted mono"> ← #{e.intentId}</span> : null}
                </td>
                <td className="summary" title={summary(e.action, e.data)}>
                  {summary(e.action, e.data)}
                </td>
              </tr>
            ))}
            <StatusRow pending={list.isPending} empty={rows.length === 0} colSpan={8} testid="audit-empty">
              No entry matches these filters.
            </StatusRow>
          </tbody>
        </table>
        <ListFoot
          testid="audit"
          count={`${int(rows.length)} shown`}
          hasMore={Boolean(list.hasNextPage)}
          loading={list.isFetchingNextPage}
          loaded={Boolean(list.data)}
          endText="start of the log for these filters"
          onMore={() => void list.fetchNextPage()}
        />
      </div>
      {s.id ? <AuditDrawer key={s.id} id={s.id} onClose={() => set({ id: null })} onOpen={(id) => set({ id })} /> : null}
    </div>
  );
}
