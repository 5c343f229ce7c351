/**
 * Fallback timers (issue 15): an install run with `--fallback DUR` is rolled
 * back by the agent itself unless it is made permanent within DUR, even with
 * no server connected (docs/protocol.md, "Fallback timer"). Here: the
 * duration's syntax and bounds, the agent's record and event schemas, the
 * status line, and what the server does with a `fallback` event.
 */
import { z } from "zod";

/** Shorter than this leaves no time to look at the node; longer is not a fallback. */
export const FALLBACK_MIN_MS = 5_000;
export const FALLBACK_MAX_MS = 24 * 3_600_000;

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000 } as const;

/** `20m`, `1200s`, `1h30m`: the duration in ms, or an error sentence. */
export function parseFallback(text: string): { ok: true; ms: number } | { ok: false; message: string } {
  const m = /^(?:(\d{1,5})h)?(?:(\d{1,5})m)?(?:(\d{1,7})s)?$/.exec(text.trim());
  if (!text.trim() || !m || (m[1] ?? m[2] ?? m[3]) === undefined)
    return { ok: false, message: `"${text}" is not a duration: use a number with h, m or s, like 20m, 1200s or 1h30m` };
  const ms = Number(m[1] ?? 0) * UNIT_MS.h + Number(m[2] ?? 0) * UNIT_MS.m + Number(m[3] ?? 0) * UNIT_MS.s;
  if (ms < FALLBACK_MIN_MS || ms > FALLBACK_MAX_MS) return { ok: false, message: `the fallback must be from 5s to 24h, not ${text}` };
  return { ok: true, ms };
}

/** The tRPC input of an install's fallback (ms). */
export const fallbackMsInput = z.number().int().min(FALLBACK_MIN_MS).max(FALLBACK_MAX_MS);

/** The agent's fallback record (the install result's `fallback`, and the event's). */
export const fallbackRecord = z.object({
  vsn: z.string().max(255),
  from: z.string().max(255),
  /** The node's wall clock, ms since the epoch. */
  deadline: z.number().int(),
  durationMs: z.number().int().positive(),
  commandId: z.string().max(128),
  rollbackDigest: z.string().max(64).nullable(),
  maxKills: z.number().int().nonnegative().nullable(),
  acceptFindings: z.array(z.string().max(512)).max(200),
});
export type FallbackRecord = z.infer<typeof fallbackRecord>;

/** The agent's `fallback` event (the frame's fields the server reads). */
export const fallbackEvent = z.object({
  kind: z.literal("fallback"),
  context: z.enum(["rolled_back", "failed", "node_restarted", "cleared"]),
  reason: z.object({ text: z.string().max(4096) }).loose(),
  fallback: fallbackRecord,
  rollbackCommandId: z.string().max(128).nullable(),
});
export type FallbackEvent = z.infer<typeof fallbackEvent>;

/** The fallback an install command's recorded result carries, if any. */
export function fallbackOfResult(stored: unknown): FallbackRecord | null {
  const r = (stored as { result?: { fallback?: unknown } | null } | null)?.result?.fallback;
  const parsed = fallbackRecord.safeParse(r);
  return parsed.success ? parsed.data : null;
}

function left(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h ` : ""}${h || m ? `${m}m ` : ""}${s % 60}s`;
}

/**
 * The status line of an upgrade with a pending fallback: only while the
 * release is installed and not yet permanent (null otherwise).
 */
export function fallbackLine(status: string, f: FallbackRecord | null, now = Date.now()): string | null {
  if (!f || status !== "installed") return null;
  const at = new Date(f.deadline).toISOString();
  return f.deadline > now
    ? `falls back to ${f.from} at ${at} unless made permanent (${left(f.deadline - now)} left)`
    : `falls back to ${f.from} since ${at} unless made permanent (due; waiting for the node to report it)`;
}
