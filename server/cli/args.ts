/** Argument parsing: node's parseArgs, then zod for values. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { z } from "zod";
import { usage } from "./errors";

export type Options = NonNullable<ParseArgsConfig["options"]>;

function parseOrUsage(argv: string[], options: Options) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw usage((e as Error).message.split("\n")[0]);
  }
}

export function parse(argv: string[], options: Options, positionals: string[]) {
  const parsed = parseOrUsage(argv, options);
  const missing = positionals.filter((_, i) => parsed.positionals[i] === undefined);
  if (missing.length > 0) throw usage(`missing ${missing.map((m) => `<${m}>`).join(" ")}`);
  if (parsed.positionals.length > positionals.length) throw usage(`unexpected argument "${parsed.positionals[positionals.length]}"`);
  return { values: parsed.values as Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals };
}

/** Validate one value with zod; a failure is a usage error naming the option. */
export function check<T>(schema: z.ZodType<T>, value: unknown, name: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw usage(`${name}: ${r.error.issues[0]?.message ?? "invalid"}`);
  return r.data;
}
