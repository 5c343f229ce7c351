/**
 * Fallback timers (issue 15): an install run with `--fallback DUR` is rolled
 * back by the agent itself unless it is made permanent within DUR, even with
 * no server connected (docs/protocol.md, "Fallback timer"). Here: the
 * agent's record and event schemas and the status line; the duration's
 * syntax and bounds are app/_lib/duration.ts (shared with the page), what
 * the server does with a `fallback` event is UpgradeWorkflow's.
 */
import { z } from "zod";
import { FALLBACK_MAX_MS, FALLBACK_MIN_MS, timeLeft } from "../../app/_lib/duration";

export { FALLBACK_MAX_MS, FALLBACK_MIN_MS, parseFallback } from "../../app/_lib/duration";

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

/**
 * The status line of an upgrade with a pending fallback: only while the
 * release is installed and not yet permanent (null otherwise).
 */
export function fallbackLine(status: string, f: FallbackRecord | null, now = Date.now()): string | null {
  if (!f || status !== "installed") return null;
  const at = new Date(f.deadline).toISOString();
  return f.deadline > now
    ? `falls back to ${f.from} at ${at} unless made permanent (${timeLeft(f.deadline - now)} left)`
    : `falls back to ${f.from} since ${at} unless made permanent (due; waiting for the node to report it)`;
}

/** The install command a fallback event names, as stored (UpgradeCommand's fields this check reads). */
type SentInstall = { node: string; action: string; params: unknown } | null;
/** The fields of a sent command's params (workflow.ts `params`) the check reads. */
const sentParams = z.object({ vsn: z.string(), fallbackMs: z.number().optional() }).loose();

/**
 * Why a `fallback` event from `node` cannot be believed (null: it can): it
 * must name an install that was sent to this very node, for the event's
 * release, with a fallback timer. Anything else would let an agent token
 * mark another node's upgrade, or one without a fallback, rolled back.
 */
export function fallbackRefusal(node: string, e: FallbackEvent, install: SentInstall): string | null {
  if (!install) return "no such command";
  if (install.node !== node) return "the command was sent to another node";
  if (install.action !== "install") return `the command is ${install.action}, not an install`;
  const params = sentParams.safeParse(install.params);
  if (!params.success || params.data.fallbackMs === undefined) return "the install had no fallback timer";
  if (params.data.vsn !== e.fallback.vsn) return `the install was of ${params.data.vsn}, not ${e.fallback.vsn}`;
  return null;
}
