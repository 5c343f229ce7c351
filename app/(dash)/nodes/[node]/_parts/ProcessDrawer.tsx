"use client";
/**
 * One process in detail: the live record and its sparklines (from the
 * server's tables), and what only the agent can tell now (`procs.detail`:
 * stacktrace, stack modules, links, monitors, dictionary, state or why the
 * state is not shown).
 */
import { useQuery } from "@tanstack/react-query";
import { Line, LineChart, ResponsiveContainer, Tooltip, YAxis } from "recharts";
import { Drawer, Section } from "../../../../_components/Drawer";
import { Atom, Mfa, Pid } from "../../../../_components/Names";
import { bytes, clock, int } from "../../../../_lib/format";
import { beamdeckCode, errorMessage, useTRPC } from "../../../../_lib/trpc";
import type { ProcessDetail } from "../../../../_lib/types";
import { MailboxSection } from "./MailboxSection";
import { stateHiddenWhy, valuesHiddenWhy } from "../../../../_lib/values-why";

function PidLink({ pid, onSelect }: { pid: string; onSelect: (pid: string) => void }) {
  if (!/^<\d+\.\d+\.\d+>$/.test(pid)) return <span className="pid">{pid}</span>;
  return (
    <button type="button" className="pid-link" onClick={() => onSelect(pid)}>
      {pid}
    </button>
  );
}

function Sparkline({ points, field, color, format }: { points: { at: number; mailbox: number; memory: number }[]; field: "mailbox" | "memory"; color: string; format: (n: number) => string }) {
  if (points.length < 2) return <div className="spark-empty muted">collecting…</div>;
  return (
    <ResponsiveContainer width="100%" height="100%">
      <LineChart data={points} margin={{ top: 4, right: 4, bottom: 4, left: 4 }}>
        <YAxis hide domain={[0, "auto"]} />
        <Tooltip
          isAnimationActive={false}
          labelFormatter={(_, p) => (p?.[0] ? clock(Number((p[0].payload as { at: number }).at)) : "")}
          formatter={(v) => [format(Number(v)), field]}
          contentStyle={{ fontSize: 11 }}
        />
        <Line dataKey={field} stroke={color} strokeWidth={1.5} dot={false} isAnimationActive={false} />
      </LineChart>
    </ResponsiveContainer>
  );
}

function StateView({ state, hiddenBelow }: { state: ProcessDetail["state"]; hiddenBelow: string | null }) {
  if (state === null || state === undefined) return <p className="muted">not reported</p>;
  if ("error" in state) {
    return (
      <p className="muted" data-testid="drawer-state-why">
        {stateHiddenWhy(state.error, hiddenBelow)}
      </p>
    );
  }
  return (
    <pre className="code" data-testid="drawer-state">
      {state.text}
      {state.truncated ? "\n… (truncated)" : ""}
    </pre>
  );
}

export function ProcessDrawer({ node, pid, onSelect, onClose }: { node: string; pid: string; onSelect: (pid: string) => void; onClose: () => void }) {
  const trpc = useTRPC();
  const rec = useQuery(trpc.procs.get.queryOptions({ node, pid }, { refetchInterval: 2000 }));
  const series = useQuery(trpc.procs.series.queryOptions({ node, pid }, { refetchInterval: 2000 }));
  const detail = useQuery(trpc.procs.detail.queryOptions({ node, pid }, { staleTime: Infinity, retry: false }));
  const d = detail.data;
  const r = rec.data ?? d?.record ?? null;

  const points = series.data ?? [];
  const gone = rec.data === null && !rec.isPending;

  return (
    <Drawer
      testid="proc-drawer"
      closeTestid="drawer-close"
      label={`Process ${pid}`}
      data={{ "data-pid": pid }}
      onClose={onClose}
      title={
        <>
          <Pid pid={pid} />
          {r?.name ? <Atom text={r.name} /> : r?.initialCall ? <Mfa mfa={r.initialCall} /> : null}
        </>
      }
      actions={
        <button type="button" className="btn btn-ghost" onClick={() => void detail.refetch()} disabled={detail.isFetching} data-testid="drawer-refresh">
          {detail.isFetching ? "Asking agent…" : "Refresh detail"}
        </button>
      }
    >
      {gone ? <div className="alert alert-warn">This process is no longer in the live table (it exited, or the node restarted).</div> : null}
      {r ? (
        <dl className="kv" data-testid="drawer-record">
          <dt>Status</dt>
          <dd>
            <span className={`pstatus pstatus-${r.status}`}>{r.status}</span>
          </dd>
          <dt>Mailbox</dt>
          <dd className="num" data-testid="drawer-mailbox" data-value={r.mailbox}>
            {int(r.mailbox)}
          </dd>
          <dt>Memory</dt>
          <dd className="num" data-testid="drawer-memory" data-value={r.memory}>
            {bytes(r.memory)}
          </dd>
          <dt>Reductions</dt>
          <dd className="num">{int(r.reductions)}</dd>
          <dt>Initial call</dt>
          <dd>
            <Mfa mfa={r.initialCall} />
          </dd>
          <dt>Current function</dt>
          <dd>
            <Mfa mfa={r.currentFunction} />
          </dd>
          <dt>Application</dt>
          <dd>{r.application ?? <span className="muted">–</span>}</dd>
          <dt>Parent</dt>
          <dd>{r.parent ? <PidLink pid={r.parent} onSelect={onSelect} /> : <span className="muted">–</span>}</dd>
          <dt>Ancestors</dt>
          <dd className="chips">
            {r.ancestors.length ? r.ancestors.map((a) => (a.startsWith("<") ? <PidLink key={a} pid={a} onSelect={onSelect} /> : <Atom key={a} text={a} compact />)) : <span className="muted">–</span>}
          </dd>
        </dl>
      ) : null}

      <div className="sparks">
        <div className="spark">
          <div className="spark-label">
            Mailbox <span className="muted">{points.length ? `${int(points.at(-1)!.mailbox)} now · last ${Math.round((points.at(-1)!.at - points[0].at) / 1000)} s` : ""}</span>
          </div>
          <div className="spark-plot" data-testid="drawer-spark-mailbox">
            <Sparkline points={points} field="mailbox" color="#dc2626" format={int} />
          </div>
        </div>
        <div className="spark">
          <div className="spark-label">
            Memory <span className="muted">{points.length ? `${bytes(points.at(-1)!.memory)} now` : ""}</span>
          </div>
          <div className="spark-plot" data-testid="drawer-spark-memory">
            <Sparkline points={points} field="memory" color="#2563eb" format={bytes} />
          </div>
        </div>
      </div>

      {detail.error ? (
        <div className={beamdeckCode(detail.error) === "BD_NODE_OFFLINE" ? "alert alert-warn" : "alert alert-error"} data-testid="drawer-error">
          {errorMessage(detail.error)}
        </div>
      ) : null}
      {detail.isPending ? <p className="muted">Asking the agent…</p> : null}
      {d ? (
        <>
          {!d.alive ? <div className="alert alert-warn">The agent reports this process as dead.</div> : null}
          <Section title={`Mailbox (${int(d.messageQueueLen ?? 0)})`} testid="drawer-mailbox-preview">
            <MailboxSection node={node} pid={pid} preview={d.mailbox} hiddenBelow={d.valuesHiddenBelow} />
          </Section>
          <Section title="Stacktrace" testid="drawer-stacktrace">
            {d.stacktrace?.length ? (
              <table className="grid compact">
                <tbody>
                  {d.stacktrace.map((f, i) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: frames are positional and never reorder; a recursive function repeats its mfa
                    <tr key={i} data-testid="stack-frame" data-mfa={f.mfa}>
                      <td>
                        <Mfa mfa={f.mfa} />
                      </td>
                      <td className="muted mono">{f.file ? `${f.file}${f.line ? `:${f.line}` : ""}` : ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <p className="muted">empty</p>
            )}
          </Section>
          <Section title="Modules on the stack" testid="drawer-stack-modules">
            <div className="chips">{d.stackModules?.length ? d.stackModules.map((m) => <Atom key={m} text={m} compact />) : <span className="muted">none</span>}</div>
          </Section>
          <div className="cols">
            <Section title={`Links (${d.links?.length ?? 0})`} testid="drawer-links">
              <div className="chips">{d.links?.length ? d.links.map((l) => <PidLink key={l} pid={l} onSelect={onSelect} />) : <span className="muted">none</span>}</div>
            </Section>
            <Section title={`Monitors (${d.monitors?.length ?? 0})`} testid="drawer-monitors">
              <div className="chips">
                {d.monitors?.length ? (
                  d.monitors.map((m, i) => {
                    // A process can monitor the same pid twice; the list is positional and never reorders.
                    const key = `${i}:${m.pid ?? m.name ?? m.kind}`;
                    return m.pid ? (
                      <PidLink key={key} pid={m.pid} onSelect={onSelect} />
                    ) : (
                      <span key={key} className="mono">
                        {m.name ?? m.kind}
                      </span>
                    );
                  })
                ) : (
                  <span className="muted">none</span>
                )}
              </div>
            </Section>
            <Section title={`Monitored by (${d.monitoredBy?.length ?? 0})`} testid="drawer-monitored-by">
              <div className="chips">{d.monitoredBy?.length ? d.monitoredBy.map((p) => <PidLink key={p} pid={p} onSelect={onSelect} />) : <span className="muted">none</span>}</div>
            </Section>
          </div>
          <Section title="Process flags and heap">
            <dl className="kv">
              <dt>trap_exit</dt>
              <dd>{d.trapExit === undefined ? "–" : String(d.trapExit)}</dd>
              <dt>priority</dt>
              <dd>{d.priority ?? "–"}</dd>
              <dt>heap / stack</dt>
              <dd className="num">{d.heapSize !== undefined ? `${int(d.heapSize)} / ${int(d.stackSize ?? null)} words` : "–"}</dd>
              <dt>total heap</dt>
              <dd className="num">{d.totalHeapSize !== undefined ? `${int(d.totalHeapSize)} words` : "–"}</dd>
              {d.garbageCollection ? Object.entries(d.garbageCollection).map(([k, v]) => <FragmentKV key={k} k={`gc ${k}`} v={typeof v === "number" ? int(v) : String(v)} />) : null}
            </dl>
          </Section>
          <Section title="Dictionary" testid="drawer-dictionary">
            {d.dictionary?.length ? (
              <table className="grid compact">
                <tbody>
                  {d.dictionary.map((e) => (
                    <tr key={e.key}>
                      <td className="mono">{e.key}</td>
                      <td className="mono wrap">{e.value ?? <span className="muted">value not shown: {valuesHiddenWhy(d.valuesHiddenBelow)}</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <p className="muted">empty</p>
            )}
            {d.dictionaryTruncated ? <p className="muted">… more entries not shown</p> : null}
          </Section>
          <Section title="State">
            <StateView state={d.state} hiddenBelow={d.valuesHiddenBelow} />
          </Section>
        </>
      ) : null}
    </Drawer>
  );
}

function FragmentKV({ k, v }: { k: string; v: string }) {
  return (
    <>
      <dt>{k}</dt>
      <dd className="num">{v}</dd>
    </>
  );
}
