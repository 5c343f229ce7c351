/** Display helpers: numbers, bytes, times, Erlang names. Pure functions. */

const intFormat = new Intl.NumberFormat("en-US");

/** 1234567 → "1,234,567"; null → "–". A decimal string (an integer beyond 2^53 from the agent) is shown exactly. */
export function int(n: number | string | null | undefined): string {
  if (n === null || n === undefined) return "–";
  return intFormat.format(typeof n === "string" ? BigInt(n) : n);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** Bytes, humanised in powers of 1024: 2848 → "2.8 KiB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

/** Compact counts for badges: 950 → "950", 12345 → "12.3k", 2500000 → "2.5M". */
export function compact(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** "Elixir.TestListener" → "TestListener"; other atoms unchanged. */
export function elixirAlias(atom: string): string | null {
  return atom.startsWith("Elixir.") ? atom.slice(7) : null;
}

/** An MFA in the style of its language: Elixir "TestListener.loop/1", Erlang "prim_inet:accept0/3". */
export function mfaText(mfa: string): string {
  const m = /^(.*):([^:]+\/\d+)$/.exec(mfa);
  if (!m) return mfa;
  const alias = elixirAlias(m[1]);
  return alias ? `${alias}.${m[2]}` : mfa;
}

/** Wall-clock time, local, with seconds: "14:03:27". */
export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

/** The browser's time zone as an offset: "UTC", "UTC+1", "UTC-5:30". */
export function zoneLabel(ms = Date.now()): string {
  const off = -new Date(ms).getTimezoneOffset();
  if (off === 0) return "UTC";
  const h = Math.floor(Math.abs(off) / 60);
  const m = Math.abs(off) % 60;
  return `UTC${off > 0 ? "+" : "-"}${h}${m ? `:${String(m).padStart(2, "0")}` : ""}`;
}

/** Wall-clock time with its zone: "14:03:27 UTC+1". */
export function clockZone(ms: number): string {
  return `${clock(ms)} ${zoneLabel(ms)}`;
}

/** Date and time, local: "2026-11-24 14:03:27". */
export function dateTime(ms: number): string {
  const d = new Date(ms);
  const pad = (x: number) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ms)}`;
}

/** How long ago, coarse: "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}
