/**
 * Times as the API sends them (epoch ms, or ISO text where a Date crossed
 * the wire as JSON) and as the filters take them (ISO, UTC), plus the
 * time-range presets the list pages share. Pure functions.
 */

/** Epoch ms of a number, ISO string or Date; null for nothing or junk. */
export function toMs(v: number | string | Date | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return v;
  const ms = v instanceof Date ? v.getTime() : Date.parse(v);
  return Number.isNaN(ms) ? null : ms;
}

export const RANGE_PRESETS = [
  { key: "15m", label: "15 min", ms: 15 * 60_000 },
  { key: "1h", label: "1 h", ms: 3_600_000 },
  { key: "24h", label: "24 h", ms: 86_400_000 },
  { key: "7d", label: "7 d", ms: 7 * 86_400_000 },
  { key: "all", label: "All", ms: null },
] as const;

export type RangeKey = (typeof RANGE_PRESETS)[number]["key"] | "custom";

/** A time range as the filters hold it: a preset or custom bounds, ISO (UTC). */
export interface TimeRange {
  key: RangeKey;
  from: string | null;
  to: string | null;
}

/** The bounds of a preset, computed once (now), so a query key does not change every render. */
export function presetRange(key: RangeKey, now = Date.now()): TimeRange {
  const p = RANGE_PRESETS.find((r) => r.key === key);
  if (!p) return { key: "all", from: null, to: null };
  return { key: p.key, from: p.ms === null ? null : new Date(now - p.ms).toISOString(), to: null };
}

/** `<input type="datetime-local">` text (local time) for an ISO instant. */
export function toLocalInput(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (x: number) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** ISO (UTC) for `<input type="datetime-local">` text, read as local time. */
export function fromLocalInput(text: string): string | null {
  if (!text) return null;
  const ms = new Date(text).getTime();
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}
