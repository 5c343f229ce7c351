/**
 * The agent wire protocol, version 1 (docs/protocol.md), as zod schemas.
 * Every frame from an agent is parsed here before anything else sees it.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 1;

const text = z.string().max(64 * 1024);
export const pid = z.string().max(64);
const count = z.number().int().nonnegative();
/**
 * A count that may pass 2^53 (reductions, bytes): the agent sends integers
 * beyond 2^53 as decimal strings (docs/protocol.md, "JSON of Erlang terms").
 * Those stay exact strings end to end; anything JavaScript holds exactly is
 * a number. Order and arithmetic use `countValue`.
 */
export const bigCount = z
  .union([count, z.string().regex(/^\d+$/).max(40)])
  .transform((v): number | string => (typeof v === "string" && !Number.isSafeInteger(Number(v)) ? v.replace(/^0+(?=\d)/, "") : Number(v)));
export type BigCount = z.infer<typeof bigCount>;

/** A count that cannot pass 2^53 (a mailbox's length, a process's bytes): a string form is read, beyond 2^53 refused. */
export const safeCount = z
  .union([count, z.string().regex(/^\d+$/).max(40)])
  .transform((v) => Number(v))
  .refine((v) => Number.isSafeInteger(v), { message: "beyond 2^53, not a possible value here" });

/** A big count as a number for sorting, sums and charts (beyond 2^53 approximate; the exact text stays in the record). */
export function countValue(c: BigCount): number {
  return typeof c === "number" ? c : Number(c);
}
const maybeText = text.nullable();
/** Any other Erlang term, printed and capped (docs/protocol.md, "JSON of Erlang terms"). */
export const printed = z.object({ text: z.string().max(256 * 1024), truncated: z.boolean() }).loose();

export const processRecord = z.object({
  pid,
  name: maybeText,
  initialCall: maybeText,
  currentFunction: maybeText,
  mailbox: safeCount,
  memory: safeCount,
  reductions: bigCount,
  status: z.string().max(32),
  links: z.array(pid).max(100_000),
  parent: pid.nullable(),
  ancestors: z.array(text).max(64),
  application: maybeText.optional().default(null),
  /** Anonymous-fun processes: the module of their stack frames (capability `labels`). */
  label: maybeText.optional(),
});
export type ProcessRecord = z.infer<typeof processRecord>;

export const helloFrame = z.object({
  type: z.literal("hello"),
  protocol: z.literal(PROTOCOL_VERSION),
  node: z.string().min(1).max(255),
  bootId: z.string().min(8).max(64),
  agentVersion: text,
  otpRelease: text,
  ertsVersion: text,
  systemVersion: text.optional(),
  distributed: z.boolean().optional(),
  startedAt: z.number().int().optional(),
  processCount: count,
  processLimit: count.optional(),
  schedulers: count.optional(),
  applications: z.array(z.object({ name: text, vsn: text, description: text.optional() })).max(1000),
  releases: z
    .array(z.object({ name: text, vsn: text, status: text, apps: z.array(text).max(1000).optional() }).loose())
    .max(100)
    .nullable(),
  capabilities: z.array(z.string().max(32)).max(32).default([]),
  /** Fleet tokens created with a group accept only hellos naming it. */
  group: z.string().max(100).optional(),
  config: z.object({ getState: z.boolean().optional() }).loose().optional(),
  lastEventSeq: count.default(0),
});
export type HelloFrame = z.infer<typeof helloFrame>;

/** The hello kept on the node row (JSON of a parsed hello; older rows may lack fields). */
const storedHello = helloFrame.pick({ processCount: true, ertsVersion: true, releases: true, group: true }).partial();
export type StoredHello = z.infer<typeof storedHello>;

/** Read a stored hello; a row that does not match reads as empty (nothing is shown rather than a wrong value). */
export function readStoredHello(json: unknown): StoredHello {
  const parsed = storedHello.safeParse(json ?? {});
  return parsed.success ? parsed.data : {};
}

export const procsFrame = z.object({
  type: z.literal("procs"),
  seq: count,
  at: z.number().int(),
  reset: z.boolean().default(false),
  total: count,
  upsert: z.array(processRecord).max(5000).default([]),
  mailbox: z
    .array(z.tuple([pid, safeCount]))
    .max(200_000)
    .default([]),
  remove: z.array(pid).max(200_000).default([]),
  /** The agent sends only its top-N and watched processes (over the welcome's cap). */
  partial: z.boolean().optional(),
  stats: z
    .object({
      scanUs: count.optional(),
      sampleUs: count.optional(),
      intervalMs: count.optional(),
      dropped: count.optional(),
    })
    .loose()
    .optional(),
});
export type ProcsFrame = z.infer<typeof procsFrame>;

export interface TreeNode {
  pid: string | null;
  id: string;
  name: string | null;
  kind: "supervisor" | "worker";
  modules: string[] | "dynamic";
  children: TreeNode[];
  linked: LinkedProcess[];
  truncated?: boolean;
  timeout?: boolean;
}
export interface LinkedProcess {
  pid: string;
  name: string | null;
  initialCall: string | null;
  linked: LinkedProcess[];
}

const linkedProcess: z.ZodType<LinkedProcess> = z.lazy(() =>
  z.object({
    pid,
    name: maybeText,
    initialCall: maybeText,
    linked: z.array(linkedProcess).max(1000).default([]),
  }),
);

const treeNode: z.ZodType<TreeNode> = z.lazy(() =>
  z.object({
    pid: pid.nullable(),
    id: text,
    name: maybeText,
    kind: z.enum(["supervisor", "worker"]),
    modules: z.union([z.array(text).max(1000), z.literal("dynamic")]),
    children: z.array(treeNode).max(100_000).default([]),
    linked: z.array(linkedProcess).max(1000).default([]),
    truncated: z.boolean().optional(),
    timeout: z.boolean().optional(),
  }),
);

export const treeApp = z.object({
  name: text,
  vsn: text.nullable().optional(),
  master: pid.nullable().optional(),
  root: treeNode.nullable(),
});
export type TreeApp = z.infer<typeof treeApp>;

export const treeFrame = z.object({
  type: z.literal("tree"),
  at: z.number().int(),
  apps: z.array(treeApp).max(1000),
});

const agentError = z.object({ code: z.string().max(64), message: z.string().max(64 * 1024) });

export const replyFrame = z
  .object({
    type: z.literal("reply"),
    id: z.string().max(128),
    ok: z.boolean(),
    result: z.unknown().optional(),
    error: agentError.optional(),
  })
  .refine((r) => r.ok || r.error !== undefined, { message: "a failed reply needs an error", path: ["error"] });

export const eventFrame = z
  .object({
    type: z.literal("event"),
    seq: z.number().int().positive(),
    bootId: z.string().min(8).max(64),
    at: z.number().int(),
    kind: z.string().min(1).max(64),
    context: maybeText.optional(),
    supervisor: maybeText.optional(),
    reason: printed.nullable().optional(),
    offender: z
      .object({
        id: maybeText.optional(),
        pid: pid.nullable().optional(),
        mfargs: printed.nullable().optional(),
        restartType: maybeText.optional(),
        shutdown: maybeText.optional(),
        childType: maybeText.optional(),
      })
      .loose()
      .nullable()
      .optional(),
    report: printed.nullable().optional(),
    /** Capability `dropped_seqs`: seqs [from, to] before this event that the agent's buffer dropped. */
    droppedSeqs: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
  })
  .loose();
export type EventFrame = z.infer<typeof eventFrame>;

export const progressFrame = z.object({
  type: z.literal("progress"),
  commandId: z.string().max(128),
  step: z.string().max(64),
  message: text,
  at: z.number().int(),
});

export const commandResultFrame = z.object({
  type: z.literal("command_result"),
  commandId: z.string().max(128),
  ok: z.boolean(),
  result: z.unknown().optional(),
  error: agentError.optional(),
});

export const agentFrame = z.discriminatedUnion("type", [helloFrame, procsFrame, treeFrame, replyFrame, eventFrame, progressFrame, commandResultFrame]);
export type AgentFrame = z.infer<typeof agentFrame>;

/** A refusal keeps the decoded JSON (when it was an object), so an event's seq can still be accounted for (refusal.ts). */
export type ParsedFrame = { ok: true; frame: AgentFrame } | { ok: false; reason: string; type: string | null; json: Record<string, unknown> | null };

/** Parse one text frame; the reason is short enough for a WebSocket close (≤ 123 bytes). */
export function parseAgentFrame(data: string): ParsedFrame {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return { ok: false, reason: "frame is not valid JSON", type: null, json: null };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, reason: "frame is not a JSON object", type: null, json: null };
  }
  const obj = json as Record<string, unknown>;
  const parsed = agentFrame.safeParse(obj);
  if (parsed.success) return { ok: true, frame: parsed.data };
  if (typeof obj.type !== "string") return { ok: false, reason: "frame has no type", type: null, json: obj };
  const type = obj.type.slice(0, 20);
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? issue.path.join(".") : "frame";
  const reason = `bad ${type} frame: ${where}: ${issue?.message ?? "invalid"}`;
  return { ok: false, reason: truncateUtf8(reason, 120), type, json: obj };
}

export function truncateUtf8(s: string, maxBytes: number): string {
  let out = s;
  while (Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1);
  return out;
}

// ---- server → agent ----
export type ServerFrame =
  | { type: "welcome"; protocol: number; lastEventSeq: number; serverTime: number; maxProcessRecords: number }
  | { type: "ack"; eventSeq: number }
  | { type: "request"; id: string; method: string; params: Record<string, unknown>; timeoutMs: number };
