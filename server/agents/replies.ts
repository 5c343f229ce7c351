/**
 * The agent's replies (docs/protocol.md, "request" and "Upgrade requests"):
 * one zod schema per method, in one table that `AgentRegistry.request`
 * parses every reply with. Every other shape of agent data (tRPC outputs,
 * the CLI's, the browser's) is inferred from these.
 *
 * Fields the server or the CLI read are checked; the rest of a large
 * structure (relup scripts, appups) passes through `.loose()` so the
 * dashboard can still show everything the agent sends.
 */
import { z } from "zod";
import { oldCodeReply } from "../upgrades/old-code-watch";
import { plan } from "../upgrades/plan-schema";
import { pid, printed, processRecord } from "./protocol";
import { releasePath } from "./relup-schema";
import { etsTables, portList, systemOverview } from "./system-views";

const text = z.string().max(64 * 1024);
const n = z.number().int().nonnegative();
/** The agent sends integers beyond 2^53 as decimal strings (docs/protocol.md). */
const int = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^-?\d+$/)
    .max(40),
]);

const stackFrame = z.object({ mfa: text, file: text.nullable().optional(), line: z.number().int().nullable().optional() });
const monitor = z.object({ kind: text, pid: pid.nullable().optional(), name: text.nullable().optional(), node: text.nullable().optional() });

export const processDetail = z.object({
  pid,
  alive: z.boolean(),
  record: processRecord.nullable().optional(),
  stacktrace: z.array(stackFrame).max(1000).default([]),
  stackModules: z.array(text).max(10_000).default([]),
  links: z.array(pid).max(100_000).default([]),
  monitors: z.array(monitor).max(100_000).default([]),
  monitoredBy: z.array(pid).max(100_000).default([]),
  trapExit: z.boolean().optional(),
  priority: text.optional(),
  heapSize: int.optional(),
  stackSize: int.optional(),
  totalHeapSize: int.optional(),
  messageQueueLen: int.optional(),
  garbageCollection: z.object({ minorGcs: int.optional(), fullsweepAfter: int.optional() }).loose().optional(),
  dictionary: z
    .array(z.object({ key: text, value: text.nullable() }))
    .max(10_000)
    .default([]),
  dictionaryTruncated: z.boolean().optional(),
  dictionaryValues: z.enum(["shown", "hidden"]).optional(),
  /** The state as printed, or why it is not shown (closed shapes, so `"error" in state` tells them apart). */
  state: z
    .union([z.object({ text, truncated: z.boolean() }), z.object({ error: text, reason: printed.optional() })])
    .nullable()
    .optional(),
  /**
   * The first messages (only where the agent's get_state allows) and leak
   * hints (always: counts and shapes, no values). Absent from agents
   * without the `message_preview` capability.
   */
  mailbox: z
    .object({
      status: z.enum(["empty", "shown", "hidden", "too_many", "gone"]),
      messages: z.array(z.object({ text, truncated: z.boolean() })).max(100),
      hints: z.array(z.object({ id: text, count: z.number().int().nonnegative(), message: text, fix: text })).max(20),
      /** Messages at or above this many are not read (observer_cli's guard). */
      limit: z.number().int().nonnegative(),
    })
    .optional(),
});
export type ProcessDetail = z.infer<typeof processDetail>;

/** The `find_processes` reply: processes whose stack or callback module matches, bounded as the agent bounds it. */
export const findProcessesReply = z.object({
  matches: z.array(z.object({ pid: z.string().max(64), modules: z.array(z.string().max(1024)).max(64) })).max(1000),
  scanned: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  partial: z.boolean(),
});

/** A release package in the release directory; `unpacked` when a release of its version is known to release_handler. */
export const releasePackage = z.object({
  file: text,
  package: text,
  vsn: text.nullable(),
  size: n.nullable(),
  modifiedAt: z.number().int().nullable(),
  unpacked: z.boolean(),
});
export type ReleasePackage = z.infer<typeof releasePackage>;

const releaseEntry = z.object({ name: text, vsn: text, status: text, apps: z.array(text).max(1000).default([]) });

export const releasesReply = z.object({
  /** Is release_handler running; `stale`: statuses read from the RELEASES file (the handler busy or absent). */
  handler: z.boolean(),
  stale: z.boolean(),
  releasesDir: text,
  rootDir: text,
  name: text.nullable(),
  current: text.nullable(),
  permanent: text.nullable(),
  releases: z.array(releaseEntry).max(100),
  packages: z.array(releasePackage).max(100),
  pending: z.array(z.object({ vsn: text, state: z.enum(["unpacked", "package"]), package: text.nullable() })).max(200),
  path: releasePath.nullable().default(null),
});
export type ReleasesReply = z.infer<typeof releasesReply>;

export const upgradeCommandReply = z.object({ accepted: z.literal(true), commandId: text, duplicate: z.boolean(), status: text }).loose();

/** One process in a step's `deaths` lists. */
const death = z.object({ pid, name: text.nullable().optional(), initialCall: text.nullable().optional(), reason: text.nullable().optional() }).loose();
export type Death = z.infer<typeof death>;

/** The `result` of a `command_result` frame: what a step did (fields by action; all optional). */
export const stepResult = z
  .object({
    releases: z
      .array(z.object({ vsn: text, status: text }).loose())
      .max(100)
      .optional(),
    deaths: z
      .object({
        predictedAndDied: z.array(death).max(100_000).default([]),
        diedUnpredicted: z.array(death).max(100_000).default([]),
        predictedButAlive: z.array(death).max(100_000).default([]),
        /** How many processes the agent watched around the step (those the plan named, and their links). */
        watched: n.optional(),
      })
      .loose()
      .optional(),
    inferred: z.boolean().optional(),
  })
  .loose()
  .nullable();
export type StepResult = z.infer<typeof stepResult>;

/** Method → reply schema: what `AgentRegistry.request` parses each reply with. */
export const REPLIES = {
  process_detail: processDetail,
  refresh: z.object({}).loose(),
  releases: releasesReply,
  upgrade_plan: plan,
  upgrade_command: upgradeCommandReply,
  old_code: oldCodeReply,
  system_overview: systemOverview,
  ets_tables: etsTables,
  ports: portList,
  find_processes: findProcessesReply,
} as const;
export type AgentMethod = keyof typeof REPLIES;
export type ReplyOf<M extends AgentMethod> = z.infer<(typeof REPLIES)[M]>;

export type ParsedReply<M extends AgentMethod> = { ok: true; reply: ReplyOf<M> } | { ok: false; problem: string };

/** Parse one reply by its method's schema; the problem names the first field that does not match. */
export function parseReply<M extends AgentMethod>(method: M, raw: unknown): ParsedReply<M> {
  const parsed = REPLIES[method].safeParse(raw);
  // Type plumbing: indexing REPLIES by a generic M widens the parsed type to the union of all replies.
  if (parsed.success) return { ok: true, reply: parsed.data as ReplyOf<M> };
  const issue = parsed.error.issues[0];
  return { ok: false, problem: `the agent's ${method} reply does not match the protocol: ${issue?.path.join(".") || "reply"}: ${issue?.message ?? "invalid"}` };
}
