"use client";
/**
 * Events: supervisor and crash reports, alarms and agent notices from every
 * node (or one), newest first. History pages back by id (`before`); new
 * events arrive over `events.onEvents` and join the top while the tail is
 * live and the range has no end. Filters and the open event live in the URL.
 */
import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useEffect, useMemo, useRef, useState } from "react";
import { Atom, Pid } from "../../_components/Names";
import { TimeRangePicker } from "../../_components/TimeRangePicker";
import { TimeHeader } from "../../_components/AsOf";
import { UpgradeStepRow } from "./_parts/UpgradeStepRow";
import { mergeTimeline, stepsBelong } from "../../../server/events/timeline";
import { clock, dateTime, int } from "../../_lib/format";
import { useDebounced, useThrottled } from "../../_lib/hooks";
import { errorMessage, useTRPC, useTRPCClient } from "../../_lib/trpc";
import { useUrlState } from "../../_lib/url-state";
import { ListFoot, SelectFilter, StatusRow } from "../../_components/ListParts";
import { presetRange, type RangeKey, type TimeRange } from "../../_lib/when";
import { EventDrawer } from "./_parts/EventDrawer";
import { byIdDesc, CONTEXTS, KINDS, matches, type EventFilter, type EventItem } from "./_parts/model";

const KEYS = ["node", "kind", "context", "supervisor", "reason", "pid", "range", "from", "to", "id", "paused"] as const;
const PAGE = 100;
const LIVE_CAP = 500;

function rangeOf(s: { range: string; from: string; to: string }): TimeRange {
  if (s.range === "custom") return { key: "custom", from: s.from || null, to: s.to || null };
  return presetRange((s.range || "all") as RangeKey);
}

function NodeTabs({ nodes, value, onChange }: { nodes: { name: string; connected: boolean }[]; value: string; onChange: (node: string) => void }) {
  if (nodes.length > 6) {
    return (
      <label className="inline-field">
        <span>Node</span>
        <select className="ctl" data-testid="filter-node" value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="">all nodes</option>
          {nodes.map((n) => (
            <option key={n.name} value={n.name}>
              {n.name}
              {n.connected ? "" : " (disconnected)"}
            </option>
          ))}
        </select>
      </label>
    );
  }
  return (
    <div className="tabs" role="tablist" data-testid="filter-node" data-value={value}>
      <button type="button" role="tab" aria-selected={!value} className={!value ? "tab active" : "tab"} onClick={() => onChange("")} data-testid="node-tab-all">
        All nodes
      </button>
      {nodes.map((n) => (
        <button
          key={n.name}
          type="button"
          role="tab"
          aria-selected={value === n.name}
          className={value === n.name ? "tab active" : "tab"}
          data-testid="node-tab"
          data-node={n.name}
          onClick={() => onChange(n.name)}
        >
          <span className={n.connected ? "dot dot-up" : "dot dot-down"} />
          <span className="mono">{n.name}</span>
        </button>
      ))}
    </div>
  );
}

function EventRow({ e, selected, onOpen }: { e: EventItem & { live?: boolean }; selected: boolean; onOpen: () => void }) {
  const tone = e.kind === "crash_report" || (e.context && e.context !== "child_terminated") ? "ev-bad" : e.reason === "killed" ? "ev-killed" : "";
  return (
    <tr
      className={`clickable ${selected ? "selected" : ""} ${e.live ? "fresh" : ""}`}
      onClick={onOpen}
      data-testid="event-row"
      data-id={e.id}
      data-node={e.node}
      data-kind={e.kind}
      data-context={e.context ?? ""}
      data-reason={e.reason ?? ""}
      data-offender-id={e.offender?.id ?? ""}
      data-offender-pid={e.offender?.pid ?? ""}
      data-expected={e.expected ? "true" : "false"}
      data-source={e.live ? "live" : "history"}
    >
      <td className="nowrap" title={dateTime(e.at)}>
        {clock(e.at)}
        <span className="muted date-part"> {dateTime(e.at).slice(5, 10)}</span>
      </td>
      <td className="mono nowrap">{e.node}</td>
      <td>
        <span className={`kind-tag kind-${e.kind}`}>{e.kind.replace(/_report$/, "")}</span>
      </td>
      <td className="mono">{e.context ?? <span className="muted">–</span>}</td>
      <td>{e.supervisor ? <Atom text={e.supervisor} compact /> : <span className="muted">–</span>}</td>
      <td>
        {e.offender ? (
          <span className="cell-proc">
            {e.offender.id ? <Atom text={e.offender.id} compact /> : null}
            {e.offender.pid ? <Pid pid={e.offender.pid} /> : null}
          </span>
        ) : (
          <span className="muted">–</span>
        )}
      </td>
      <td className={`mono reason-cell ${tone}`} title={e.reason ?? ""}>
        {e.reason ?? <span className="muted">–</span>}
      </td>
      <td>
        {e.expected ? (
          <span className="flag flag-expected" title={`predicted by upgrade ${e.upgradeId ?? "?"}`} data-testid="event-expected-flag">
            expected (upgrade {e.upgradeId?.slice(0, 8) ?? "?"})
          </span>
        ) : null}
      </td>
    </tr>
  );
}

export default function EventsPage() {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const queryClient = useQueryClient();
  const [s, set] = useUrlState(KEYS);
  const [range, setRange] = useState<TimeRange>(() => rangeOf(s));
  const supervisor = useDebounced(s.supervisor, 300);
  const reason = useDebounced(s.reason, 300);
  const nodes = useQuery(trpc.nodes.list.queryOptions(undefined, { refetchInterval: 10_000 }));

  useEffect(() => {
    document.title = "Events · beamdeck";
  }, []);

  const filter: EventFilter = useMemo(
    () => ({
      ...(s.node ? { node: s.node } : {}),
      ...(s.kind ? { kind: s.kind } : {}),
      ...(s.context ? { context: s.context } : {}),
      ...(supervisor ? { supervisor } : {}),
      ...(reason ? { reason } : {}),
      ...(s.pid ? { offenderPid: s.pid } : {}),
      ...(range.from ? { since: range.from } : {}),
      ...(range.to ? { until: range.to } : {}),
    }),
    [s.node, s.kind, s.context, supervisor, reason, s.pid, range.from, range.to],
  );

  const history = useInfiniteQuery({
    queryKey: [...trpc.events.list.pathKey(), { input: filter, type: "infinite" }],
    queryFn: ({ pageParam }) => client.events.list.query({ ...filter, limit: PAGE, ...(pageParam ? { before: pageParam } : {}) }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.nextBefore,
  });

  // The live tail: events newer than the history, kept while the filter holds.
  const [live, setLive] = useState<(EventItem & { live: true })[]>([]);
  const [held, setHeld] = useState(0);
  const paused = s.paused === "1";
  const liveAllowed = !range.to;
  // A flood of reports renders at most twice a second, newest LIVE_CAP kept.
  const incoming = useRef<EventItem[]>([]);
  const flush = useThrottled(() => {
    const batch = incoming.current.splice(0).slice(-LIVE_CAP);
    if (batch.length) setLive((prev) => [...batch.map((e) => ({ ...e, live: true as const })), ...prev].sort(byIdDesc).slice(0, LIVE_CAP));
  }, 500);
  const filterRef = useRef(filter);
  useEffect(() => {
    filterRef.current = filter;
    incoming.current = [];
    setLive([]);
    setHeld(0);
  }, [filter]);
  const pausedRef = useRef(paused);
  useEffect(() => {
    pausedRef.current = paused;
  }, [paused]);
  const starts = useRef(0);

  const sub = useSubscription(
    trpc.events.onEvents.subscriptionOptions(s.node ? { node: s.node } : undefined, {
      enabled: liveAllowed,
      onStarted: () => {
        // After a reconnect, what arrived meanwhile comes from the history.
        starts.current += 1;
        if (starts.current > 1) void queryClient.invalidateQueries({ queryKey: trpc.events.list.pathKey() });
      },
      onData: (events) => {
        const fresh = events.filter((e) => matches(e, filterRef.current));
        if (fresh.length === 0) return;
        if (pausedRef.current) {
          setHeld((h) => h + fresh.length);
          return;
        }
        incoming.current.push(...fresh);
        flush();
      },
    }),
  );

  const resume = () => {
    set({ paused: null });
    setHeld(0);
    void history.refetch();
  };

  const rows = useMemo(() => {
    const seen = new Set<string>();
    const out: (EventItem & { live?: boolean })[] = [];
    for (const e of [...live, ...(history.data?.pages.flatMap((p) => p.events) ?? [])]) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      out.push(e);
    }
    return out.sort(byIdDesc);
  }, [live, history.data]);

  // A node's timeline shows its upgrade steps too (not under event filters, which steps do not have).
  const stepsWanted = stepsBelong({ node: s.node, kind: s.kind, context: s.context, supervisor: s.supervisor, reason: s.reason, offenderPid: s.pid });
  const steps = useQuery(
    trpc.events.upgradeSteps.queryOptions(
      { node: s.node ?? "", ...(range.from ? { since: range.from } : {}), ...(range.to ? { until: range.to } : {}) },
      { enabled: stepsWanted, refetchInterval: 10_000 },
    ),
  );
  const timeline = useMemo(() => mergeTimeline(rows, stepsWanted ? (steps.data ?? []) : [], !history.hasNextPage), [rows, steps.data, stepsWanted, history.hasNextPage]);

  const onRange = (r: TimeRange) => {
    setRange(r);
    set({ range: r.key === "all" ? null : r.key, from: r.key === "custom" ? r.from : null, to: r.key === "custom" ? r.to : null });
  };
  const anyFilter = Boolean(s.kind || s.context || s.supervisor || s.reason || s.pid || range.key !== "all");
  const liveState = !liveAllowed ? "off" : paused ? "paused" : sub.status === "pending" ? "live" : sub.status === "error" ? "error" : "connecting";

  return (
    <div className="page events-page">
      <div className="page-head">
        <h1>Events</h1>
        <span className="page-meta">supervisor and crash reports, alarms, agent notices</span>
        <span className="spacer" />
        <span className={`live-state live-${liveState}`} data-testid="live-state" data-state={liveState} title={sub.error ? errorMessage(sub.error) : undefined}>
          {liveState === "live" ? "live" : liveState === "paused" ? "paused" : liveState === "off" ? "not live (the range has an end)" : liveState === "error" ? "live tail lost" : "connecting…"}
        </span>
        {liveAllowed ? (
          paused ? (
            <button type="button" className="btn" onClick={resume} data-testid="live-resume">
              Resume{held ? ` (${int(held)} new)` : ""}
            </button>
          ) : (
            <button type="button" className="btn" onClick={() => set({ paused: "1" })} data-testid="live-pause">
              Pause
            </button>
          )
        ) : null}
      </div>

      <NodeTabs nodes={nodes.data ?? []} value={s.node} onChange={(node) => set({ node: node || null })} />

      <div className="panel">
        <div className="filters" data-testid="event-filters">
          <SelectFilter label="Kind" value={s.kind} options={KINDS} onChange={(kind) => set({ kind })} testid="filter-kind" />
          <SelectFilter label="Context" value={s.context} options={CONTEXTS} onChange={(context) => set({ context })} testid="filter-context" />
          <label className="inline-field">
            <span>Supervisor</span>
            <input className="ctl" placeholder="contains…" value={s.supervisor} onChange={(e) => set({ supervisor: e.target.value || null })} data-testid="filter-supervisor" />
          </label>
          <label className="inline-field">
            <span>Reason</span>
            <input className="ctl narrow" placeholder="contains…" value={s.reason} onChange={(e) => set({ reason: e.target.value || null })} data-testid="filter-reason" />
          </label>
          {s.pid ? (
            <span className="filter-chip" data-testid="filter-pid">
              offender <span className="mono">{s.pid}</span>
              <button type="button" className="link-btn" onClick={() => set({ pid: null })} aria-label="Clear the process filter">
                ×
              </button>
            </span>
          ) : null}
          <TimeRangePicker value={range} onChange={onRange} />
          {anyFilter ? (
            <button
              type="button"
              className="link-btn"
              data-testid="filter-clear"
              onClick={() => {
                set({ kind: null, context: null, supervisor: null, reason: null, pid: null, range: null, from: null, to: null });
                setRange(presetRange("all"));
              }}
            >
              clear filters
            </button>
          ) : null}
        </div>
        {history.error ? <div className="alert alert-error">{errorMessage(history.error)}</div> : null}
        <table className="grid events" data-testid="events-table" data-count={rows.length}>
          <thead>
            <tr>
              <TimeHeader />
              <th>Node</th>
              <th>Kind</th>
              <th>Context</th>
              <th>Supervisor</th>
              <th>Offender</th>
              <th>Reason</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {timeline.map(({ event: e, step }) =>
              e ? <EventRow key={e.id} e={e} selected={s.id === e.id} onOpen={() => set({ id: e.id })} /> : step ? <UpgradeStepRow key={step.commandId} step={step} node={s.node ?? ""} /> : null,
            )}
            <StatusRow pending={history.isPending} empty={rows.length === 0} colSpan={8} testid="events-empty">
              {anyFilter || s.node ? "No event matches these filters in this range." : "No events yet. They appear here, live, when a node's supervisor or logger reports one."}
            </StatusRow>
          </tbody>
        </table>
        <ListFoot
          testid="events"
          count={`${int(rows.length)} shown${live.length ? ` · ${int(live.length)} live` : ""}`}
          hasMore={Boolean(history.hasNextPage)}
          loading={history.isFetchingNextPage}
          loaded={Boolean(history.data)}
          endText="end of the history for these filters"
          onMore={() => void history.fetchNextPage()}
        />
      </div>

      {s.id ? (
        <EventDrawer
          key={s.id}
          id={s.id}
          onClose={() => set({ id: null })}
          onFilter={(p) => set({ id: null, ...(p.node ? { node: p.node } : {}), ...(p.supervisor ? { supervisor: p.supervisor, pid: null } : {}), ...(p.offenderPid ? { pid: p.offenderPid } : {}) })}
        />
      ) : null}
    </div>
  );
}
