/**
 * The relup and appup shapes the agent sends (beamdeck_agent_relup_read's
 * instruction_json/1, beamdeck_agent_appup's appup_json): shared by the
 * `releases` reply's path and the plan's relup. Instructions are shown as
 * sent, so the fields the dashboard reads are typed and the rest passes.
 */
import { z } from "zod";
import { printed } from "./protocol";

const text = z.string().max(64 * 1024);
const names = z.array(text).max(10_000);

/** One low-level relup instruction; `text` is the instruction as printed. */
export const relupInstruction = z
  .object({
    op: text,
    text,
    app: text.optional(),
    appVsn: text.nullable().optional(),
    module: text.optional(),
    modules: z
      .array(z.union([text, z.object({ module: text, extra: printed.optional() }).loose()]))
      .max(10_000)
      .optional(),
    prePurge: text.optional(),
    postPurge: text.optional(),
    mfa: text.optional(),
    mode: text.optional(),
  })
  .loose();
export type RelupInstruction = z.infer<typeof relupInstruction>;

/** A script as the agent sends it: null when longer than it sends in one frame. */
export const relupScript = z.array(relupInstruction).max(100_000);

/** One high-level appup instruction, defaults made explicit. */
export const appupInstruction = z
  .object({
    kind: text,
    text,
    module: text.optional(),
    application: text.optional(),
    prePurge: text.optional(),
    postPurge: text.optional(),
    change: text.optional(),
    codeChange: z.boolean().optional(),
    deps: names.optional(),
    defaulted: names.optional(),
    mfa: text.optional(),
  })
  .loose();
export type AppupInstruction = z.infer<typeof appupInstruction>;

export const appup = z
  .object({
    app: text,
    from: text.nullable(),
    to: text.nullable(),
    change: z.enum(["changed", "added", "removed"]),
    file: text.nullable(),
    instructions: z.array(appupInstruction).max(100_000),
    error: z.object({ code: text, message: text }).nullable(),
  })
  .loose();
export type Appup = z.infer<typeof appup>;

/** A purge setting the operator's choices changed in the relup. */
export const relupChange = z.object({ module: text, field: z.enum(["prePurge", "postPurge"]), from: text, to: text });
export type RelupChange = z.infer<typeof relupChange>;

/** The path from the running release to another: relup script and appups. */
export const releasePath = z
  .object({
    name: text,
    from: text,
    to: text,
    direction: z.enum(["up", "down"]),
    relupFile: text,
    targetStatus: text.nullable().optional(),
    source: text,
    descr: printed.optional(),
    rewrittenOnDisk: z.boolean().optional(),
    script: relupScript,
    onDisk: relupScript.nullable().optional(),
    appups: z.array(appup).max(10_000).default([]),
  })
  .loose();
export type ReleasePath = z.infer<typeof releasePath>;
