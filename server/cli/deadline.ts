/**
 * Every CLI command has an overall deadline (docs/cli.md): a default per
 * command kind, `--timeout DUR` to change it. When it passes, the command
 * ends with one line saying what it was waiting for and what is known, exit
 * 6 ("timed out, outcome unknown").
 *
 * What a command waits for is told here as it goes (`waitingFor`); the API
 * client names each request, and following a step names the step and keeps
 * what the server has recorded of it up to date.
 */
import { CliError, EXIT, usage } from "./errors";

export interface Waiting {
  /** e.g. "unpack of 1.1.0 on n@h" or "the server's reply to upgrades.plan". */
  what: string;
  /** What is known so far, e.g. "the server recorded ok at 00:44:29.494". */
  known?: () => string | undefined | Promise<string | undefined>;
}

let current: Waiting[] = [];

/** Say what the command now waits for; the returned function says it no longer does. */
export function waitingFor(w: Waiting): () => void {
  current.push(w);
  return () => {
    current = current.filter((x) => x !== w);
  };
}

/** `30s`, `2m`, `1h`, `500ms`, or a number of seconds. */
export function parseDuration(text: string, flag = "--timeout"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw usage(`${flag} takes a duration like 30s, 5m or 1h, not "${text}"`);
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"];
  if (n <= 0 || n > 24 * 3_600_000) throw usage(`${flag} must be more than 0 and at most 24h, not "${text}"`);
  return n;
}

/** Take `--timeout DUR` / `--timeout=DUR` out of a command's arguments. */
export function takeTimeout(argv: string[]): { argv: string[]; timeoutMs: number | null } {
  const rest: string[] = [];
  let timeoutMs: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "--timeout") {
      if (argv[i + 1] === undefined) throw usage("--timeout needs a duration, e.g. --timeout 5m");
      timeoutMs = parseDuration(argv[++i]);
    } else if (a.startsWith("--timeout=")) timeoutMs = parseDuration(a.slice("--timeout=".length));
    else rest.push(a);
  }
  return { argv: rest, timeoutMs };
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  return `${Math.round(ms / 6000) / 10} min`;
}

/** A known fact needs at most this long to be read when the deadline has passed. */
const KNOWN_BUDGET_MS = 3000;

/** "<outermost wait>: <what is known>; waiting for <innermost wait>; no answer within …". */
async function describe(ms: number): Promise<string> {
  const outer = current[0];
  const inner = current.at(-1);
  if (!outer || !inner) return `timed out after ${formatDuration(ms)} (--timeout to wait longer)`;
  let known: string | undefined;
  try {
    known = await Promise.race([Promise.resolve(outer.known?.()), new Promise<undefined>((r) => setTimeout(r, KNOWN_BUDGET_MS))]);
  } catch {
    known = undefined;
  }
  const parts = [known, inner !== outer ? `waiting for ${inner.what}` : undefined, `no answer within ${formatDuration(ms)} (--timeout to wait longer)`];
  return `${outer.what}: ${parts.filter(Boolean).join("; ")}`;
}

/** Run `fn`; if it has not finished after `ms`, fail with exit 6 saying what it waited for. */
export async function withDeadline<T>(ms: number | null, fn: () => Promise<T>): Promise<T> {
  current = [];
  if (ms === null) return fn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void describe(ms).then((m) => reject(new CliError(m, EXIT.timedOut)));
    }, ms);
  });
  try {
    return await Promise.race([fn(), expired]);
  } finally {
    clearTimeout(timer);
  }
}
