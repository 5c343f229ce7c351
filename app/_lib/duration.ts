/**
 * The fallback timer's duration (issue 15), one syntax and one pair of
 * bounds for the CLI's `--fallback DUR`, the server's input check and the
 * upgrade page's field: `20m`, `1200s`, `1h30m`. And a rollout's soak, for
 * the CLI's `--soak` and the Rollouts page.
 */

/** Shorter than this leaves no time to look at the node; longer is not a fallback. */
export const FALLBACK_MIN_MS = 5_000;
export const FALLBACK_MAX_MS = 24 * 3_600_000;

/** Both syntaxes' units (a fallback takes h, m and s; a soak ms too). */
const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;

/** The duration in ms, or an error sentence. */
export function parseFallback(text: string): { ok: true; ms: number } | { ok: false; message: string } {
  const t = text.trim();
  const m = /^(?:(\d{1,5})h)?(?:(\d{1,5})m)?(?:(\d{1,7})s)?$/.exec(t);
  if (!t || !m) return { ok: false, message: `"${text}" is not a duration: use a number with h, m or s, like 20m, 1200s or 1h30m` };
  const ms = Number(m[1] ?? 0) * UNIT_MS.h + Number(m[2] ?? 0) * UNIT_MS.m + Number(m[3] ?? 0) * UNIT_MS.s;
  if (ms < FALLBACK_MIN_MS || ms > FALLBACK_MAX_MS) return { ok: false, message: `the fallback must be from 5s to 24h, not ${t}` };
  return { ok: true, ms };
}

/** A rollout's soak: at most a day (tests soak for seconds, production for minutes). */
export const SOAK_MAX_MS = 24 * 3_600_000;

/** A rollout's soak (`rollout start --soak`, the Rollouts page's form): a number and a unit, 500ms, 30s, 5m, 1h. */
export function parseSoak(text: string): { ok: true; ms: number } | { ok: false; message: string } {
  const m = /^(\d{1,9})(ms|s|m|h)$/.exec(text.trim());
  if (!m) return { ok: false, message: "a duration like 500ms, 30s, 5m or 1h" };
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return ms > SOAK_MAX_MS ? { ok: false, message: "at most 24h" } : { ok: true, ms };
}

/** Time left, for the status line: `4m 12s`, `1h 0m 5s`. */
export function timeLeft(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h ` : ""}${h || m ? `${m}m ` : ""}${s % 60}s`;
}
