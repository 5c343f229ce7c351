/**
 * Who sees the values in event text (issue T-int, item 3). Crash, supervisor
 * and progress reports are printed from a process's data: with the agent's
 * `get_state` on, a crash report's text holds the process's state, its queued
 * messages, its dictionary and its frames' arguments, and an exit reason
 * (`{{badmatch, V}, …}`) or a child's start arguments (`offender.mfargs`)
 * may hold values too. The same rule as for process values applies
 * (`processes.valuesRole`, server/agents/process-values.ts): a caller below
 * the least role gets these kinds with the values taken out — what crashed
 * (pid, name, initial call, class), the reason's atom or tag, the frames
 * (module:function/arity, no arguments), the supervisor and the child's id —
 * in every event read (tRPC list, detail, live tail, hence the CLI).
 * Webhooks decide by their own setting (`eventValues`, off by default).
 * Alerts never carry values: their titles name the reason's tag
 * (alerts/rules.ts).
 */
import { z } from "zod";
import type { PrismaClient } from "../../generated/prisma/client";
import type { EventFrame } from "../agents/protocol";
import { hasRole, type Role } from "../auth/roles";
import { getSetting } from "../storage/settings";
import { reasonTag } from "./reason-tag";
import type { EventView } from "./store";

/** Kinds whose text the agent prints from process data. */
const VALUE_KINDS = new Set(["crash_report", "supervisor_report", "progress_report"]);

/** Fields of those kinds that carry no values (names, pids, code locations). */
const KEEP = ["type", "seq", "bootId", "at", "kind", "context", "supervisor", "supervisorModule", "pid", "name", "initialCall", "class", "droppedSeqs"] as const;
const OFFENDER_KEEP = ["id", "pid", "restartType", "shutdown", "childType", "mfa", "nbChildren"] as const;
/** A crash report's frames (capability `crash_frames`): `module:function/arity (file:line)`, no arguments. */
const frames = z.array(z.string().max(512)).max(50);

/** Why the values are missing, as the hidden text says it. */
export function hiddenText(why: string): string {
  return `(hidden ${why}: state, messages, dictionary, arguments)`;
}

/** The frame with its values taken out (other kinds as they are); `why` says why (below which role, or the webhook's setting). */
export function withoutValues(frame: EventFrame, why: string): EventFrame {
  if (!VALUE_KINDS.has(frame.kind)) return frame;
  const src = frame as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of KEEP) if (src[k] !== undefined) out[k] = src[k];
  const r = frame.reason as { atom?: unknown; text?: string } | null | undefined;
  if (r) {
    const tag = reasonTag(typeof r.atom === "string" ? r.atom : (r.text ?? null)) ?? "(hidden)";
    out.reason = { text: tag, truncated: tag !== r.text, ...(typeof r.atom === "string" ? { atom: r.atom } : {}) };
  }
  if (frame.offender) {
    const o = frame.offender as Record<string, unknown>;
    const kept: Record<string, unknown> = {};
    for (const k of OFFENDER_KEEP) if (o[k] !== undefined) kept[k] = o[k];
    if (o.mfargs) kept.mfargs = { text: hiddenText(why), truncated: true };
    out.offender = kept;
  } else if (frame.offender === null) out.offender = null;
  const f = frames.safeParse(src.frames);
  if (f.success) out.frames = f.data;
  if (frame.report) out.report = { text: hiddenText(why), truncated: true };
  out.valuesHidden = why;
  return out as EventFrame;
}

/** A list or live-tail row without values (its reason is the only text it carries). */
export function viewWithoutValues(view: EventView): EventView {
  return VALUE_KINDS.has(view.kind) ? { ...view, reason: reasonTag(view.reason) } : view;
}

/** Null when `role` sees values; else the reason (below which role) the caller's events are shown without them. */
export async function valuesHiddenFor(prisma: PrismaClient, role: Role): Promise<string | null> {
  const least = await getSetting(prisma, "processes.valuesRole");
  return hasRole(role, least) ? null : `below the ${least} role`;
}
