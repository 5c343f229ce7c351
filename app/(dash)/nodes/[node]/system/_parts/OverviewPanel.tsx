"use client";
/**
 * The node overview (`system.overview`: one sample per 5 s, an hour kept):
 * charts over time and gauges of counts against their limits.
 */
import { useQuery } from "@tanstack/react-query";
import { Area, AreaChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import type { SystemOverview } from "../../../../../../server/agents/system-views";
import { bytes, clock, int } from "../../../../../_lib/format";
import { errorMessage, useTRPC } from "../../../../../_lib/trpc";
import { AsOf } from "../../../../../_components/AsOf";

const MEMORY_KINDS = [
  { key: "processes", label: "processes", color: "#2563eb" },
  { key: "ets", label: "ETS", color: "#16a34a" },
  { key: "binary", label: "binary", color: "#d97706" },
  { key: "code", label: "code", color: "#7c3aed" },
  { key: "atom", label: "atom", color: "#0891b2" },
  { key: "other", label: "other system", color: "#9ca3af" },
] as const;

function memoryPoint(o: SystemOverview) {
  const m = o.memory;
  return { at: o.at, processes: m.processes, ets: m.ets, binary: m.binary, code: m.code, atom: m.atom, other: Math.max(0, m.system - m.ets - m.binary - m.code - m.atom) };
}

function Gauge({ label, count, limit, testid }: { label: string; count: number; limit: number; testid: string }) {
  const used = limit ? count / limit : 0;
  return (
    <div className={used > 0.9 ? "sys-gauge bad" : used > 0.7 ? "sys-gauge warn" : "sys-gauge"} data-testid={testid} data-count={count} data-limit={limit}>
      <div>
        <strong>{label}</strong> <span className="num">{int(count)}</span> <span className="muted">of {int(limit)}</span>
      </div>
      <div className="bar" title={`${(used * 100).toFixed(2)} % of the limit`}>
        <span style={{ width: `${Math.min(100, used * 100)}%` }} />
      </div>
    </div>
  );
}

export function OverviewPanel({ node }: { node: string }) {
  const trpc = useTRPC();
  const q = useQuery(trpc.system.overview.queryOptions({ node }, { refetchInterval: 5000 }));
  const data = q.data;
  const latest = data?.latest ?? null;
  const history = data?.history ?? [];
  const util = history.filter((o) => o.schedulerUtilization).map((o) => ({ at: o.at, busy: Math.round((o.schedulerUtilization?.total ?? 0) * 1000) / 10, runQueue: o.runQueue }));
  const memory = history.map(memoryPoint);

  return (
    <section className="panel" data-testid="system-overview">
      <div className="panel-head">
        <h2>Overview</h2>
        <span className="panel-meta" data-testid="system-as-of">
          {latest ? `OTP ${latest.otpRelease} · ${latest.schedulersOnline}/${latest.schedulers} schedulers · memory ${bytes(latest.memory.total)} · ` : ""} {latest ? <AsOf at={latest.at} /> : null}
        </span>
      </div>
      {q.error ? <div className="panel-foot error-inline">{errorMessage(q.error)}</div> : null}
      {data && !data.supported ? <div className="empty">This node's agent has no system views; upgrade the agent.</div> : null}
      {data?.supported && !latest ? <div className="empty">Collecting the first sample (one every {data.everyMs / 1000} s)…</div> : null}
      {latest ? (
        <>
          <div className="sys-gauges">
            <Gauge label="processes" testid="gauge-processes" {...latest.counts.processes} />
            <Gauge label="ports" testid="gauge-ports" {...latest.counts.ports} />
            <Gauge label="atoms" testid="gauge-atoms" {...latest.counts.atoms} />
            <Gauge label="ETS tables" testid="gauge-ets" {...latest.counts.ets} />
          </div>
          <div className="sys-charts">
            <div className="sys-chart" data-testid="chart-utilisation">
              <h3>Scheduler utilisation (%) and run queue</h3>
              <div className="plot">
                <ResponsiveContainer width="100%" height="100%">
                  <LineChart data={util} margin={{ top: 4, right: 8, bottom: 0, left: 0 }}>
                    <CartesianGrid stroke="#e5e7eb" vertical={false} />
                    <XAxis dataKey="at" type="number" domain={["dataMin", "dataMax"]} scale="time" tickFormatter={(v: number) => clock(v)} tick={{ fontSize: 11 }} minTickGap={40} />
                    <YAxis yAxisId="pct" domain={[0, 100]} tick={{ fontSize: 11 }} width={36} />
                    <YAxis yAxisId="rq" orientation="right" allowDecimals={false} tick={{ fontSize: 11 }} width={30} />
                    <Tooltip isAnimationActive={false} labelFormatter={(v) => clock(Number(v))} contentStyle={{ fontSize: 12 }} />
                    <Legend wrapperStyle={{ fontSize: 11 }} />
                    <Line yAxisId="pct" dataKey="busy" name="utilisation %" stroke="#2563eb" dot={false} isAnimationActive={false} />
                    <Line yAxisId="rq" dataKey="runQueue" name="run queue" stroke="#dc2626" dot={false} isAnimationActive={false} />
                  </LineChart>
                </ResponsiveContainer>
              </div>
            </div>
            <div className="sys-chart" data-testid="chart-memory">
              <h3>Memory by type</h3>
              <div className="plot">
                <ResponsiveContainer width="100%" height="100%">
                  <AreaChart data={memory} margin={{ top: 4, right: 8, bottom: 0, left: 0 }}>
                    <CartesianGrid stroke="#e5e7eb" vertical={false} />
                    <XAxis dataKey="at" type="number" domain={["dataMin", "dataMax"]} scale="time" tickFormatter={(v: number) => clock(v)} tick={{ fontSize: 11 }} minTickGap={40} />
                    <YAxis tickFormatter={(v: number) => bytes(v)} tick={{ fontSize: 11 }} width={64} />
                    <Tooltip isAnimationActive={false} labelFormatter={(v) => clock(Number(v))} formatter={(v) => bytes(Number(v))} contentStyle={{ fontSize: 12 }} />
                    <Legend wrapperStyle={{ fontSize: 11 }} />
                    {MEMORY_KINDS.map((k) => (
                      <Area key={k.key} dataKey={k.key} name={k.label} stackId="m" stroke={k.color} fill={k.color} fillOpacity={0.35} isAnimationActive={false} />
                    ))}
                  </AreaChart>
                </ResponsiveContainer>
              </div>
            </div>
          </div>
        </>
      ) : null}
    </section>
  );
}
