"use client";
/**
 * The open-alerts count in the navigation. `alerts.onAlerts` says when an
 * alert is raised, repeated, acknowledged or resolved; the count (and any
 * alert list on screen) refetches then, and every 30 s as a fallback.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useRef } from "react";
import { compact } from "../_lib/format";
import { useThrottled } from "../_lib/hooks";
import { useTRPC } from "../_lib/trpc";

export function AlertsBadge() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const counts = useQuery(trpc.alerts.counts.queryOptions(undefined, { refetchInterval: 30_000 }));
  const refresh = useThrottled(() => {
    void queryClient.invalidateQueries({ queryKey: trpc.alerts.counts.queryKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.alerts.list.queryKey() });
  }, 500);
  // After a reconnect, changes made while the socket was down are fetched;
  // the first start needs nothing (the count was just fetched).
  const starts = useRef(0);
  const onStarted = () => {
    starts.current += 1;
    if (starts.current > 1) refresh();
  };
  useSubscription(trpc.alerts.onAlerts.subscriptionOptions(undefined, { onData: refresh, onStarted }));
  const open = counts.data?.open ?? 0;
  const acked = counts.data?.acked ?? 0;
  return (
    <span
      className={open > 0 ? "nav-badge hot" : "nav-badge"}
      data-testid="alerts-badge"
      data-count={counts.data ? String(open) : ""}
      title={counts.data ? `${open} open, ${acked} acknowledged` : "loading"}
    >
      {counts.data ? compact(open) : "·"}
    </span>
  );
}
