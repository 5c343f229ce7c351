"use client";
/**
 * One event in full: what the agent reported (reason, offender, the printed
 * report, the raw frame) and the processes involved — the offender, its
 * supervisor and the child the supervisor runs under that id now — each a
 * link into the node page's process drawer.
 */
import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Atom, Mfa, Pid } from "../../../_components/Names";
import { Drawer, Section } from "../../../_components/Drawer";
import { Json } from "../../../_components/DataView";
import { dateTime } from "../../../_lib/format";
import { errorMessage, useTRPC } from "../../../_lib/trpc";
import type { TreeNode } from "../../../_lib/types";
import { nodeHref, type EventDetail } from "./model";

type RawEvent = EventDetail["raw"];
type Printed = RawEvent["reason"];

/** The supervisor in the live tree (by registered name or pid), and its child `childId`. */
function findInTree(apps: { root: TreeNode | null }[], supervisor: string, childId: string | null): { sup: TreeNode | null; child: TreeNode | null } {
  const walk = (n: TreeNode): TreeNode | null => {
    if (n.kind === "supervisor" && (n.name === supervisor || n.pid === supervisor)) return n;
    for (const c of n.children) {
      const hit = walk(c);
      if (hit) return hit;
    }
    return null;
  };
  for (const a of apps) {
    const sup = a.root ? walk(a.root) : null;
    if (sup) return { sup, child: childId ? (sup.children.find((c) => c.id === childId) ?? null) : null };
  }
  return { sup: null, child: null };
}

function PrintedText({ p, testid }: { p: Printed; testid: string }) {
  if (!p?.text) return <p className="muted">not reported</p>;
  return (
    <pre className="code" data-testid={testid}>
      {p.text}
      {p.truncated ? "\n… (truncated by the agent)" : ""}
    </pre>
  );
}

function Involved({ ev }: { ev: EventDetail }) {
  const trpc = useTRPC();
  // The agent sends a tree when it changes; until one newer than the event
  // has arrived, the restarted child is not known yet (poll briefly).
  const newer = (at: number | null | undefined) => typeof at === "number" && at >= ev.at;
  const tree = useQuery(
    trpc.procs.tree.queryOptions(
      { node: ev.node },
      { retry: false, enabled: Boolean(ev.supervisor), staleTime: 1000, refetchInterval: (q) => (newer(q.state.data?.at) || Date.now() - ev.receivedAt > 30_000 ? false : 1000) },
    ),
  );
  const current = newer(tree.data?.at);
  const { sup, child } = tree.data && ev.supervisor ? findInTree(tree.data.apps as { root: TreeNode | null }[], ev.supervisor, ev.offender?.id ?? null) : { sup: null, child: null };
  const supPid = sup?.pid ?? (ev.supervisor && /^<\d+\.\d+\.\d+>$/.test(ev.supervisor) ? ev.supervisor : null);
  const offPid = ev.offender?.pid ?? null;
  return (
    <table className="grid compact involved" data-testid="event-involved">
      <tbody>
        <tr>
          <td className="muted">Offender</td>
          <td>{ev.offender?.id ? <Atom text={ev.offender.id} /> : <span className="muted">–</span>}</td>
          <td>
            {offPid ? (
              <Link className="pid-link" href={nodeHref(ev.node, offPid)} data-testid="event-offender-link">
                {offPid}
              </Link>
            ) : (
              <span className="muted">no pid</span>
            )}
          </td>
          <td className="muted">{offPid ? "died here" : ""}</td>
        </tr>
        <tr>
          <td className="muted">Supervisor</td>
          <td>{ev.supervisor ? <Atom text={ev.supervisor} /> : <span className="muted">–</span>}</td>
          <td>
            {supPid ? (
              <Link className="pid-link" href={nodeHref(ev.node, supPid)} data-testid="event-supervisor-link">
                {supPid}
              </Link>
            ) : (
              <span className="muted" title={tree.error ? errorMessage(tree.error) : undefined}>
                {tree.isPending && ev.supervisor ? "…" : tree.error ? "no live data" : "not in the live tree"}
              </span>
            )}
          </td>
          <td className="muted">{supPid ? "running" : ""}</td>
        </tr>
        {ev.offender?.id && sup ? (
          <tr>
            <td className="muted">Restarted as</td>
            <td>
              <Atom text={ev.offender.id} />
            </td>
            <td>
              {!current ? (
                <span className="muted">waiting for a newer tree…</span>
              ) : child?.pid ? (
                <Link className="pid-link" href={nodeHref(ev.node, child.pid)} data-testid="event-restarted-link">
                  {child.pid}
                </Link>
              ) : (
                <span className="muted">not running</span>
              )}
            </td>
            <td className="muted">{!current ? "" : child?.pid && child.pid === offPid ? "same pid (not restarted)" : child?.pid ? "running now" : ""}</td>
          </tr>
        ) : null}
      </tbody>
    </table>
  );
}

export function EventDrawer({ id, onClose, onFilter }: { id: string; onClose: () => void; onFilter: (patch: { offenderPid?: string; supervisor?: string; node?: string }) => void }) {
  const trpc = useTRPC();
  const q = useQuery(trpc.events.get.queryOptions({ id }, { staleTime: 60_000 }));
  const ev = q.data;
  const raw = ev?.raw;
  const off = raw?.offender ?? null;
  return (
    <Drawer
      testid="event-drawer"
      onClose={onClose}
      title={
        <>
          <span className="mono">#{id}</span>
          {ev ? <strong>{ev.context ?? ev.kind}</strong> : null}
          {ev?.reason ? <span className="reason-chip">{ev.reason}</span> : null}
        </>
      }
    >
      {q.error ? <div className="alert alert-error">{errorMessage(q.error)}</div> : null}
      {q.isPending ? <p className="muted">Loading…</p> : null}
      {ev ? (
        <div data-testid="event-detail" data-id={ev.id} data-context={ev.context ?? ""} data-reason={ev.reason ?? ""} data-offender-pid={ev.offender?.pid ?? ""}>
          {ev.valuesHidden ? (
            <div className="alert" data-testid="event-values-hidden">
              Values hidden {ev.valuesHidden}: the reason shows its atom or tag, the report and start arguments are not shown (the process values setting on the admin page decides who sees them).
            </div>
          ) : null}
          {ev.expected ? (
            <div className="alert expected-note" data-testid="event-expected">
              Expected — predicted by upgrade <span className="mono">{ev.upgradeId ?? "?"}</span> that an operator approved; it did not page.{" "}
              <Link href={`/audit?node=${encodeURIComponent(ev.node)}&action=upgrade.`}>The upgrade&apos;s audit entries</Link> show the prediction and what happened (
              <Link href={`${nodeHref(ev.node)}/upgrade`}>the node&apos;s upgrade page</Link>).
            </div>
          ) : null}
          <dl className="kv">
            <dt>Node</dt>
            <dd>
              <Link className="node-link" href={nodeHref(ev.node)}>
                {ev.node}
              </Link>
            </dd>
            <dt>At (node clock)</dt>
            <dd>{dateTime(ev.at)}</dd>
            <dt>Received</dt>
            <dd>
              {dateTime(ev.receivedAt)} <span className="muted">({Math.max(0, ev.receivedAt - ev.at)} ms later)</span>
            </dd>
            <dt>Kind</dt>
            <dd className="mono">{ev.kind}</dd>
            <dt>Context</dt>
            <dd className="mono">{ev.context ?? "–"}</dd>
            <dt>Reason</dt>
            <dd className="mono" data-testid="event-reason">
              {ev.reason ?? "–"}
            </dd>
            <dt>Sequence</dt>
            <dd className="mono">
              {ev.seq} <span className="muted">boot {ev.bootId.slice(0, 8)}</span>
            </dd>
          </dl>

          <Section title="Processes involved">
            <Involved ev={ev} />
            <div className="chips drawer-links">
              {ev.offender?.pid ? (
                <button type="button" className="link-btn" onClick={() => onFilter({ offenderPid: ev.offender!.pid!, node: ev.node })}>
                  events of {ev.offender.pid}
                </button>
              ) : null}
              {ev.supervisor ? (
                <button type="button" className="link-btn" onClick={() => onFilter({ supervisor: ev.supervisor!, node: ev.node })}>
                  events of this supervisor
                </button>
              ) : null}
            </div>
          </Section>

          {off ? (
            <Section title="Offender" testid="event-offender">
              <dl className="kv">
                <dt>id</dt>
                <dd className="mono" data-testid="event-offender-id">
                  {off.id ?? "–"}
                </dd>
                <dt>pid</dt>
                <dd>{off.pid ? <Pid pid={off.pid} /> : "–"}</dd>
                <dt>mfargs</dt>
                <dd className="mono wrap">{off.mfargs?.text ? /^[\w.]+:\w+\/\d+$/.test(off.mfargs.text) ? <Mfa mfa={off.mfargs.text} /> : off.mfargs.text : "–"}</dd>
                <dt>restart type</dt>
                <dd className="mono">{off.restartType ?? "–"}</dd>
                <dt>shutdown</dt>
                <dd className="mono">{off.shutdown ?? "–"}</dd>
                <dt>child type</dt>
                <dd className="mono">{off.childType ?? "–"}</dd>
              </dl>
            </Section>
          ) : null}

          <Section title="Reason">
            <PrintedText p={raw?.reason} testid="event-reason-text" />
          </Section>
          <Section title="Report, as the node printed it">
            <PrintedText p={raw?.report} testid="event-report" />
          </Section>
          <details className="raw">
            <summary>Raw event frame</summary>
            <Json value={ev.raw} testid="event-raw" />
          </details>
        </div>
      ) : null}
    </Drawer>
  );
}
