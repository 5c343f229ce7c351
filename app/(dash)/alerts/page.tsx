"use client";
/**
 * Alerts: open, acknowledged, resolved. Repeats of one condition are
 * grouped into one alert with a count. Operators acknowledge and resolve;
 * everyone sees each alert's webhook deliveries. Raised, repeated, acked
 * and resolved alerts arrive over `alerts.onAlerts` (see AlertsBadge).
 */
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { Fragment, useEffect, useState } from "react";
import { KV } from "../../_components/DataView";
import { RoleHint } from "../../_components/RoleHint";
import { ago, dateTime, int } from "../../_lib/format";
import { useNow } from "../../_lib/hooks";
import { useRole } from "../../_lib/me";
import { errorMessage, useTRPC } from "../../_lib/trpc";
import type { RouterOutputs } from "../../_lib/types";
import { useUrlState } from "../../_lib/url-state";
import { toMs } from "../../_lib/when";
import { AlertsTabs } from "./_parts/AlertsTabs";
import { DeliveryChip } from "./_parts/Deliveries";
import { StatusRow } from "../../_components/ListParts";

type Alert = RouterOutputs["alerts"]["list"][number];
const STATUSES = [
  { key: "open", label: "Open" },
  { key: "acked", label: "Acknowledged" },
  { key: "resolved", label: "Resolved" },
  { key: "all", label: "All" },
] as const;
type StatusKey = (typeof STATUSES)[number]["key"];

const KIND_LABEL: Record<string, string> = {
  child_terminated: "child terminated",
  max_restart_intensity: "supervisor gave up",
  mailbox: "mailbox",
  node_down: "node down",
  event_gap: "event gap",
};

function Actions({ a }: { a: Alert }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useRole();
  const done = () => {
    void queryClient.invalidateQueries({ queryKey: trpc.alerts.list.queryKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.alerts.counts.queryKey() });
  };
  const ack = useMutation(trpc.alerts.ack.mutationOptions({ onSettled: done }));
  const resolve = useMutation(trpc.alerts.resolve.mutationOptions({ onSettled: done }));
  if (a.status === "resolved") return null;
  if (!can("operator")) return <RoleHint need="operator" verb={a.status === "open" ? "acknowledge" : "resolve"} />;
  const error = ack.error ?? resolve.error;
  return (
    <span className="row-actions">
      {a.status === "open" ? (
        <button type="button" className="btn" data-testid="alert-ack" disabled={ack.isPending} onClick={() => ack.mutate({ id: a.id })}>
          {ack.isPending ? "Acknowledging…" : "Acknowledge"}
        </button>
      ) : null}
      <button type="button" className="btn btn-ghost" data-testid="alert-resolve" disabled={resolve.isPending} onClick={() => resolve.mutate({ id: a.id })}>
        Resolve
      </button>
      {error ? (
        <span className="error-inline" data-testid="alert-action-error">
          {errorMessage(error)}
        </span>
      ) : null}
    </span>
  );
}

function Handled({ a, now }: { a: Alert; now: number }) {
  const acked = toMs(a.ackedAt);
  const resolved = toMs(a.resolvedAt);
  return (
    <span className="handled">
      {a.ackedBy ? (
        <span data-testid="alert-acked-by" title={acked ? dateTime(acked) : undefined}>
          acked by <strong>{a.ackedBy}</strong> {acked ? ago(acked, now) : ""}
        </span>
      ) : null}
      {a.resolvedBy ? (
        <span data-testid="alert-resolved-by" title={resolved ? dateTime(resolved) : undefined}>
          resolved by <strong>{a.resolvedBy === "auto" ? "beamdeck (condition cleared)" : a.resolvedBy}</strong> {resolved ? ago(resolved, now) : ""}
        </span>
      ) : null}
      {!a.ackedBy && !a.resolvedBy ? <span className="muted">–</span> : null}
    </span>
  );
}

function AlertDetail({ a }: { a: Alert }) {
  const { last, ...first } = a.detail;
  return (
    <div className="alert-detail" data-testid="alert-detail">
      <div className="cols2">
        <div>
          <h3>First occurrence</h3>
          <KV data={first} />
        </div>
        {last ? (
          <div>
            <h3>Latest repeat</h3>
            <KV data={last} />
          </div>
        ) : null}
      </div>
      <div className="chips detail-links">
        {a.eventId ? (
          <Link href={`/events?id=${a.eventId}`} data-testid="alert-event-link">
            the event that raised it (#{a.eventId})
          </Link>
        ) : null}
        <Link href={`/events?node=${encodeURIComponent(a.node)}`}>events on {a.node}</Link>
        <span className="muted mono">group {a.groupKey}</span>
      </div>
    </div>
  );
}

export default function AlertsPage() {
  const trpc = useTRPC();
  const now = useNow(5000);
  const [s, set] = useUrlState(["status", "node", "id"] as const);
  // A link to one alert (a webhook's `/alerts?id=`) finds it whatever its status now.
  const [fallback] = useState<StatusKey>(() => (s.id && !s.status ? "all" : "open"));
  const status = (STATUSES.some((x) => x.key === s.status) ? s.status : fallback) as StatusKey;
  const counts = useQuery(trpc.alerts.counts.queryOptions(undefined, { refetchInterval: 30_000 }));
  const list = useQuery(
    trpc.alerts.list.queryOptions(
      { status, ...(s.node ? { node: s.node } : {}), limit: 200 },
      // Deliveries are retried in the background: poll while one is pending.
      {
        placeholderData: keepPreviousData,
        refetchInterval: (q) => ((q.state.data ?? []).some((a) => a.deliveries.some((d) => d.status === "pending")) ? 2000 : 15_000),
      },
    ),
  );
  const nodes = useQuery(trpc.nodes.list.queryOptions());

  useEffect(() => {
    document.title = "Alerts · beamdeck";
  }, []);

  const rows = list.data ?? [];
  const countOf = (k: StatusKey) => (k === "open" ? counts.data?.open : k === "acked" ? counts.data?.acked : undefined);

  return (
    <div className="page alerts-page">
      <div className="page-head">
        <h1>Alerts</h1>
        <span className="page-meta">repeats of one condition are grouped; operators acknowledge and resolve</span>
      </div>
      <AlertsTabs />
      <div className="panel">
        <div className="filters">
          <div className="seg" role="tablist" aria-label="Status" data-testid="alert-status-tabs">
            {STATUSES.map((x) => (
              <button
                key={x.key}
                type="button"
                role="tab"
                aria-selected={status === x.key}
                className={status === x.key ? "seg-btn active" : "seg-btn"}
                data-testid={`alert-status-${x.key}`}
                onClick={() => set({ status: x.key, id: null })}
              >
                {x.label}
                {countOf(x.key) !== undefined ? <span className="seg-count">{int(countOf(x.key)!)}</span> : null}
              </button>
            ))}
          </div>
          <label className="inline-field">
            <span>Node</span>
            <select className="ctl" value={s.node} onChange={(e) => set({ node: e.target.value || null })} data-testid="alert-filter-node">
              <option value="">all nodes</option>
              {(nodes.data ?? []).map((n) => (
                <option key={n.name} value={n.name}>
                  {n.name}
                </option>
              ))}
            </select>
          </label>
        </div>
        {list.error ? <div className="alert alert-error">{errorMessage(list.error)}</div> : null}
        <table className="grid alerts" data-testid="alerts-table">
          <thead>
            <tr>
              <th>Status</th>
              <th>Alert</th>
              <th>Node</th>
              <th className="num">Repeats</th>
              <th>First / last</th>
              <th>Handled</th>
              <th>Webhooks</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((a) => {
              const open = s.id === a.id;
              const first = toMs(a.firstAt) ?? 0;
              const last = toMs(a.lastAt) ?? 0;
              return (
                <Fragment key={a.id}>
                  <tr
                    className={`clickable ${open ? "selected" : ""}`}
                    onClick={() => set({ id: open ? null : a.id })}
                    data-testid="alert-row"
                    data-id={a.id}
                    data-kind={a.kind}
                    data-node={a.node}
                    data-status={a.status}
                    data-count={a.count}
                  >
                    <td>
                      <span className={`astatus astatus-${a.status}`}>{a.status === "acked" ? "acknowledged" : a.status}</span>
                    </td>
                    <td className="alert-title">
                      <span className="kind-tag">{KIND_LABEL[a.kind] ?? a.kind}</span> <span data-testid="alert-title">{a.title}</span>
                    </td>
                    <td className="mono nowrap">{a.node}</td>
                    <td className="num" data-testid="alert-count">
                      {a.count > 1 ? <strong>×{int(a.count)}</strong> : "1"}
                    </td>
                    <td className="nowrap" title={`first ${dateTime(first)}\nlast ${dateTime(last)}`}>
                      {ago(first, now)}
                      {a.count > 1 ? <span className="muted"> · last {ago(last, now)}</span> : null}
                    </td>
                    <td>
                      <Handled a={a} now={now} />
                    </td>
                    <td data-testid="alert-deliveries">
                      {a.deliveries.length ? (
                        <span className="chips">
                          {a.deliveries.map((d) => (
                            <DeliveryChip key={d.webhookId} d={d} />
                          ))}
                        </span>
                      ) : (
                        <span className="muted" title="no webhook was configured when this alert was raised">
                          none
                        </span>
                      )}
                    </td>
                    <td className="actions-cell" onClick={(e) => e.stopPropagation()} onKeyDown={(e) => e.stopPropagation()}>
                      <Actions a={a} />
                    </td>
                  </tr>
                  {open ? (
                    <tr className="detail-row">
                      <td colSpan={8}>
                        <AlertDetail a={a} />
                      </td>
                    </tr>
                  ) : null}
                </Fragment>
              );
            })}
            <StatusRow pending={list.isPending} empty={rows.length === 0} colSpan={8} testid="alerts-empty">
              {status === "open" ? "No open alerts." : status === "acked" ? "No acknowledged alerts waiting to be resolved." : "No alerts here."}
            </StatusRow>
          </tbody>
        </table>
      </div>
    </div>
  );
}
