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

/** Validate one value with zod; a failure is a usage error naming the option, the value given and what is expected. */
export function check<T>(schema: z.ZodType<T>, value: unknown, name: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const got = typeof value === "string" ? ` (got "${value.length > 60 ? `${value.slice(0, 60)}…` : value}")` : "";
    throw usage(`${name}: ${r.error.issues[0]?.message ?? "invalid"}${got}`);
  }
  return r.data;
}

/** A whole number from `min` to `max` (`--limit 50`); "abc" says so instead of "received NaN". */
export function countArg(min: number, max: number) {
  const expected = `expected a whole number from ${min} to ${max}`;
  return z.string().regex(/^\d+$/, `not a whole number; ${expected}`).transform(Number).pipe(z.number().min(min, expected).max(max, expected));
}

export const pidArg = z.string().regex(/^<\d+\.\d+\.\d+>$/, "not a pid; expected a pid like <0.116.0>");

const DURATION_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const TIME_EXPECTED = "expected an ISO 8601 date or time (2026-12-01, 2026-12-01T09:30:00Z) or a time back from now (30m, 2h, 7d)";

/** `--since`/`--until`: an ISO date or time, or a duration back from `now`; the result is an ISO instant. */
export function timeArg(now: () => number = Date.now) {
  return z.string().transform((v, ctx) => {
    const back = /^(\d+)([smhd])$/.exec(v);
    if (back) return new Date(now() - Number(back[1]) * DURATION_MS[back[2]]).toISOString();
    const iso = z.iso.datetime({ offset: true }).or(z.iso.date()).safeParse(v);
    if (iso.success) return new Date(iso.data).toISOString();
    ctx.addIssue({ code: "custom", message: `not a time; ${TIME_EXPECTED}` });
    return z.NEVER;
  });
}
