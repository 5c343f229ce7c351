"use client";
/** The node's identity and state; a banner while its agent is away. */
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { ago, dateTime, int } from "../../../../_lib/format";
import { useNow, useStickyError } from "../../../../_lib/hooks";
import { beamdeckCode, errorMessage, useTRPC } from "../../../../_lib/trpc";
import "./node-tabs.css";

function uptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

/** The node's pages: its processes, its system view, its upgrades, and its events. */
function NodeTabs({ node }: { node: string }) {
  const path = usePathname() ?? "";
  const base = `/nodes/${encodeURIComponent(node)}`;
  const onUpgrade = path.endsWith("/upgrade");
  const onSystem = path.endsWith("/system");
  const tab = (active: boolean) => (active ? "node-tab active" : "node-tab");
  return (
    <nav className="node-tabs" aria-label="Node pages">
      <Link href={base} className={tab(!onUpgrade && !onSystem)} data-testid="tab-processes">
        Processes
      </Link>
      <Link href={`${base}/system`} className={tab(onSystem)} data-testid="tab-system">
        System
      </Link>
      <Link href={`${base}/upgrade`} className={tab(onUpgrade)} data-testid="tab-upgrade">
        Upgrade
      </Link>
      {/* Events live on their own page; this opens it filtered to the node. */}
      <Link href={`/events?node=${encodeURIComponent(node)}`} className="node-tab" data-testid="tab-events">
        Events
      </Link>
    </nav>
  );
}

export function NodeHeader({ node }: { node: string }) {
  const trpc = useTRPC();
  const now = useNow(1000);
  const info = useQuery(trpc.nodes.get.queryOptions({ node }, { refetchInterval: 10_000 }));
  const error = useStickyError(info);
  // When this instance holds no live state for the node, the list still knows its row.
  const list = useQuery(trpc.nodes.list.queryOptions(undefined, { enabled: Boolean(error) }));
  const row = list.data?.find((n) => n.name === node);
  const d = info.data;

  const connected = d ? d.connected : (row?.connected ?? null);
  const otp = d?.otpRelease ?? row?.otpRelease ?? null;
  const erts = d?.ertsVersion ?? row?.ertsVersion ?? null;
  const agent = d?.agentVersion ?? row?.agentVersion ?? null;
  const boundToken = d?.boundTokenId ?? row?.boundTokenId ?? null;
  const scanUs = typeof d?.stats?.scanUs === "number" ? d.stats.scanUs : null;
  const release = d?.releases?.find((r) => r.status === "current") ?? d?.releases?.find((r) => r.status === "permanent") ?? null;

  return (
    <>
      <div className="node-head" data-testid="node-header" data-node={node} data-connected={connected === null ? "" : String(connected)}>
        <div className="node-title">
          <Link href="/" className="crumb">
            Nodes
          </Link>
          <span className="crumb-sep">/</span>
          <h1 className="mono">{node}</h1>
          {connected === null ? null : connected ? (
            <span className="status status-up" data-testid="node-state">
              connected
            </span>
          ) : (
            <span className="status status-down" data-testid="node-state">
              disconnected
            </span>
          )}
        </div>
        <dl className="facts">
          <div>
            <dt>OTP</dt>
            <dd>{otp ?? "–"}</dd>
          </div>
          <div>
            <dt>ERTS</dt>
            <dd className="mono">{erts ?? "–"}</dd>
          </div>
          <div>
            <dt>Agent</dt>
            <dd className="mono">{agent ?? "–"}</dd>
          </div>
          <div>
            <dt>Agent token</dt>
            <dd className="mono" data-testid="node-bound-token" title="The only agent token this node name accepts (an admin can release or rebind it)">
              {boundToken ?? "unbound"}
            </dd>
          </div>
          {release ? (
            <div>
              <dt>Release</dt>
              <dd className="mono" data-testid="node-release">
                {release.name} {release.vsn}
              </dd>
            </div>
          ) : null}
          <div>
            <dt>Processes</dt>
            <dd className="num" data-testid="node-process-count">
              {int(d?.processCount ?? row?.processCount ?? null)}
              {d?.processLimit ? <span className="muted"> / {int(d.processLimit)}</span> : null}
            </dd>
          </div>
          {d?.schedulers ? (
            <div>
              <dt>Schedulers</dt>
              <dd className="num">{d.schedulers}</dd>
            </div>
          ) : null}
          {d?.startedAt && d.connected ? (
            <div>
              <dt>Uptime</dt>
              <dd title={`started ${dateTime(d.startedAt)}`}>{uptime(now - d.startedAt)}</dd>
            </div>
          ) : null}
          {scanUs !== null ? (
            <div>
              <dt>Scan</dt>
              <dd className="num" title="time of the agent's last mailbox scan">
                {(scanUs / 1000).toFixed(1)} ms
              </dd>
            </div>
          ) : null}
          {d ? (
            <div>
              <dt>Last data</dt>
              <dd title={dateTime(d.lastFrameAt)}>{ago(d.lastFrameAt, now)}</dd>
            </div>
          ) : null}
        </dl>
        {d?.systemVersion ? <div className="system-version mono">{d.systemVersion}</div> : null}
        <NodeTabs node={node} />
      </div>
      {d && !d.connected ? (
        <div className="banner banner-down" role="status" data-testid="disconnected-banner">
          <strong>Agent disconnected since {dateTime(d.disconnectedAt ?? d.lastFrameAt)}</strong> ({ago(d.disconnectedAt ?? d.lastFrameAt, now)}). Showing the last known data; process details need a
          connected agent.
        </div>
      ) : null}
      {error ? (
        <div className={beamdeckCode(error) === "BD_NODE_UNKNOWN" ? "banner banner-error" : "banner banner-down"} role="status" data-testid="node-error">
          <strong>{errorMessage(error)}</strong>
          {row && !row.connected ? <> · last seen {ago(row.lastSeenAt, now)}</> : null}
        </div>
      ) : null}
    </>
  );
}
