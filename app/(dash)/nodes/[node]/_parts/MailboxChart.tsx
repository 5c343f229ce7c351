"use client";
/**
 * The node's biggest mailboxes over the last minutes (`procs.history`: one
 * top-10 sample per second, 10 minutes kept). One line per process that was
 * among the biggest in the chosen span.
 */
import { useQuery } from "@tanstack/react-query";
import { useMemo, useRef, useState } from "react";
import { CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { clock, clockZone, compact, elixirAlias, int, mfaText } from "../../../../_lib/format";
import { errorMessage, useTRPC } from "../../../../_lib/trpc";
import type { MailboxSample } from "../../../../_lib/types";
import { AsOf } from "../../../../_components/AsOf";

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const SERIES = 8;
const SPANS = [
  { label: "1 min", ms: 60_000 },
  { label: "5 min", ms: 300_000 },
  { label: "10 min", ms: 600_000 },
];
/** Samples hold the top 10 with a non-empty mailbox; a shorter list means the rest were empty. */
const SAMPLE_TOP = 10;

/** A legend's name: Elixir aliases and MFAs as the web shows them everywhere. */
function nameText(name: string): string {
  return name.includes(":") ? mfaText(name) : (elixirAlias(name) ?? name);
}

interface Series {
  pid: string;
  name: string | null;
  peak: number;
  color: string;
}

/**
 * Colours stay with a process while it stays on the chart (a rank-based
 * colour would jump from line to line as mailboxes overtake each other).
 */
function assignColors(series: Omit<Series, "color">[], colors: Map<string, string>): Series[] {
  const keep = new Set(series.map((s) => s.pid));
  for (const pid of colors.keys()) if (!keep.has(pid)) colors.delete(pid);
  const used = new Set(colors.values());
  const free = PALETTE.filter((c) => !used.has(c));
  return series.map((s) => {
    let color = colors.get(s.pid);
    if (!color) {
      color = free.shift() ?? PALETTE[colors.size % PALETTE.length];
      colors.set(s.pid, color);
    }
    return { ...s, color };
  });
}

function build(samples: MailboxSample[], spanMs: number, colors: Map<string, string>) {
  const from = (samples.at(-1)?.at ?? Date.now()) - spanMs;
  const inSpan = samples.filter((s) => s.at >= from);
  const peaks = new Map<string, { name: string | null; peak: number }>();
  for (const s of inSpan) {
    for (const t of s.top) {
      const p = peaks.get(t.pid);
      if (!p || t.mailbox > p.peak) peaks.set(t.pid, { name: t.label ?? t.name ?? p?.name ?? null, peak: t.mailbox });
    }
  }
  const ranked = Array.from(peaks, ([pid, v]) => ({ pid, ...v }))
    .sort((a, b) => b.peak - a.peak)
    .slice(0, SERIES);
  const series = assignColors(ranked, colors);
  const points = inSpan.map((s) => {
    const row: Record<string, number | null> = { at: s.at };
    const byPid = new Map(s.top.map((t) => [t.pid, t.mailbox]));
    for (const ser of series) {
      // Absent from a full top list: unknown (a gap). From a short one: empty.
      row[ser.pid] = byPid.get(ser.pid) ?? (s.top.length < SAMPLE_TOP ? 0 : null);
    }
    return row;
  });
  return { series, points };
}

export function MailboxChart({ node, onSelect }: { node: string; onSelect: (pid: string) => void }) {
  const trpc = useTRPC();
  const [span, setSpan] = useState(SPANS[1].ms);
  const [log, setLog] = useState(false);
  const history = useQuery(trpc.procs.history.queryOptions({ node }, { refetchInterval: 5000 }));
  const colors = useRef(new Map<string, string>());
  const { series, points } = useMemo(() => build(history.data ?? [], span, colors.current), [history.data, span]);
  const latest = history.data?.at(-1);
  const peak = series.reduce((m, s) => Math.max(m, s.peak), 0);
  // Symlog: one big mailbox no longer flattens every other line to the axis.
  const logTicks = [0, 1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000].filter((t, i, all) => i === 0 || all[i - 1] <= peak);

  return (
    <section className="panel chart" data-testid="mailbox-chart">
      <div className="panel-head">
        <h2>Biggest mailboxes</h2>
        <span className="panel-meta" data-testid="mailbox-chart-asof">
          {latest ? `${int(latest.processCount)} processes · ` : ""}
          <AsOf at={latest?.at} />
        </span>
        <div className="spacer" />
        <button type="button" className={log ? "seg-btn solo active" : "seg-btn solo"} aria-pressed={log} onClick={() => setLog((v) => !v)} title="logarithmic scale">
          log
        </button>
        <fieldset className="seg" aria-label="Time span">
          {SPANS.map((s) => (
            <button key={s.ms} type="button" className={s.ms === span ? "seg-btn active" : "seg-btn"} onClick={() => setSpan(s.ms)}>
              {s.label}
            </button>
          ))}
        </fieldset>
      </div>
      <div className="chart-body">
        <div className="chart-plot">
          {points.length > 1 ? (
            <ResponsiveContainer width="100%" height="100%">
              <LineChart data={points} margin={{ top: 8, right: 12, bottom: 0, left: 0 }}>
                <CartesianGrid stroke="#e5e7eb" vertical={false} />
                <XAxis dataKey="at" type="number" domain={["dataMin", "dataMax"]} scale="time" tickFormatter={(v: number) => clock(v)} tick={{ fontSize: 11 }} minTickGap={40} />
                <YAxis
                  scale={log ? "symlog" : "linear"}
                  ticks={log ? logTicks : undefined}
                  domain={log ? [0, logTicks.at(-1) ?? 1] : [0, "auto"]}
                  tickFormatter={(v: number) => compact(v)}
                  tick={{ fontSize: 11 }}
                  width={48}
                  allowDecimals={false}
                />
                <Tooltip
                  isAnimationActive={false}
                  labelFormatter={(v) => clockZone(Number(v))}
                  formatter={(value, key) => {
                    const s = series.find((x) => x.pid === key);
                    const who = s ? `${s.name ? `${nameText(s.name)} ` : ""}${s.pid}` : String(key);
                    return [int(Number(value)), who];
                  }}
                  contentStyle={{ fontSize: 12 }}
                />
                {series.map((s) => (
                  <Line key={s.pid} dataKey={s.pid} stroke={s.color} strokeWidth={1.5} dot={false} isAnimationActive={false} connectNulls={false} />
                ))}
              </LineChart>
            </ResponsiveContainer>
          ) : (
            <div className="empty">{history.isPending ? "Loading…" : "Collecting samples…"}</div>
          )}
        </div>
        <ol className="legend" data-testid="mailbox-legend">
          {series.length === 0 && points.length > 1 ? <li className="muted">All mailboxes empty in this span.</li> : null}
          {series.map((s) => (
            <li key={s.pid} data-pid={s.pid}>
              <button type="button" className="legend-item" onClick={() => onSelect(s.pid)} title="open process">
                <span className="swatch" style={{ background: s.color }} />
                <span className="legend-name" data-testid="legend-name">
                  {s.name ? nameText(s.name) : s.pid}
                </span>
                {s.name ? <span className="pid muted">{s.pid}</span> : null}
                <span className="num legend-peak" title="peak in span">
                  {compact(s.peak)}
                </span>
              </button>
            </li>
          ))}
        </ol>
      </div>
      {history.error ? <div className="panel-foot error-inline">{errorMessage(history.error)}</div> : null}
    </section>
  );
}
