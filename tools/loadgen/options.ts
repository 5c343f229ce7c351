/**
 * The load generator's command line, checked in one place: hard caps on
 * nodes, processes and time, loopback endpoints only.
 *
 * @module
 */
import { z } from "zod";
import { endpoint, isLoopback } from "./endpoints";

/** Hard caps: one machine's worth of simulated fleet, never an open-ended run. */
export const MAX_AGENTS = 2000;
export const MAX_PROCS = 1_000_000;
/** agents × procs: each process costs the generator 12 bytes of its own state plus the shared template. */
export const MAX_TOTAL_PROCS = 20_000_000;
export const MAX_DURATION_S = 3600;
export const MAX_EVENTS_PER_SECOND = 100;

const duration = z
  .string()
  .regex(/^\d+(ms|s|m)?$/, "a duration like 60s, 5m or 1500ms")
  .transform((d) => {
    const n = Number.parseInt(d, 10);
    return d.endsWith("ms") ? n / 1000 : d.endsWith("m") ? n * 60 : n;
  })
  .pipe(z.number().positive().max(MAX_DURATION_S, `at most ${MAX_DURATION_S} s`));

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const loadgenOptions = z
  .object({
    url: z
      .string()
      .min(1)
      .transform((s, ctx) => {
        const urls: string[] = [];
        for (const part of s.split(",").filter((p) => p.trim() !== "")) {
          try {
            const u = endpoint(part.trim());
            if (!isLoopback(u)) ctx.addIssue({ code: "custom", message: `${part} is not a loopback address: the load generator only targets this machine (127.0.0.1, ::1, localhost)` });
            urls.push(u);
          } catch (e) {
            ctx.addIssue({ code: "custom", message: (e as Error).message });
          }
        }
        if (urls.length === 0) ctx.addIssue({ code: "custom", message: "no endpoint given" });
        return urls;
      }),
    token: z.string().min(1, "an agent token is needed (a fleet token: agent-token create L --fleet '*')"),
    agents: int(1, MAX_AGENTS).default(10),
    procs: int(1, MAX_PROCS).default(10_000),
    duration: duration.default(60),
    interval: int(0, 60_000).default(1000),
    churn: int(0, 100_000).default(200),
    eventsPerSecond: z.coerce.number().min(0).max(MAX_EVENTS_PER_SECOND).default(1),
    prefix: z
      .string()
      .regex(/^[a-z][a-z0-9_]*$/, "lowercase letters, digits, _")
      .max(40)
      .default("loadgen"),
    /** Agents started at once (a thundering herd measures the herd, not the steady state). */
    concurrency: int(1, 500).default(20),
    group: z.string().max(100).optional(),
    /** Where the final summary goes as JSON (for the bench). */
    json: z.string().optional(),
  })
  .refine((o) => o.agents * o.procs <= MAX_TOTAL_PROCS, { message: `agents × procs is capped at ${MAX_TOTAL_PROCS.toLocaleString("en")}`, path: ["procs"] });
export type LoadgenOptions = z.infer<typeof loadgenOptions>;

/** `--name value` / `--name=value` pairs (kebab-case → camelCase) into the schema; bad input throws one readable message. */
export function parseArgs(argv: string[]): LoadgenOptions {
  const raw: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf("=");
    const name = (eq > 0 ? a.slice(2, eq) : a.slice(2)).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    raw[name] = value;
  }
  if (raw.token === undefined && process.env.BEAMDECK_AGENT_TOKEN) raw.token = process.env.BEAMDECK_AGENT_TOKEN;
  const r = loadgenOptions.safeParse(raw);
  if (!r.success) throw new Error(r.error.issues.map((i) => `--${i.path.join(".") || "options"}: ${i.message}`).join("\n"));
  const unknown = Object.keys(raw).filter((k) => !(k in loadgenOptions.shape));
  if (unknown.length > 0) throw new Error(`unknown option ${unknown.map((k) => `--${k}`).join(", ")}`);
  return r.data;
}
