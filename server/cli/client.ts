/**
 * The CLI's connection to a running server: BEAMDECK_URL (default
 * http://localhost:4000) and BEAMDECK_API_TOKEN.
 */
import type { Env } from "../storage/database-url";
import { createTRPCClient, httpLink, TRPCClientError } from "@trpc/client";
import type { AppRouter } from "../routers/_app";
import { waitingFor } from "./deadline";
import { CliError, EXIT } from "./errors";

export type Api = ReturnType<typeof createTRPCClient<AppRouter>>;

export function serverUrl(env: Env = process.env): string {
  const raw = env.BEAMDECK_URL ?? "http://localhost:4000";
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new CliError(`BEAMDECK_URL is not a URL: "${raw}"`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new CliError(`BEAMDECK_URL must be http(s)://HOST:PORT, not "${raw}"`);
  return u.origin;
}

/** How long one request may wait for its reply, unless the caller says otherwise. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** The procedure a tRPC request URL names ("upgrades.unpack"). */
function procedureOf(url: string): string {
  return decodeURIComponent(/\/api\/trpc\/([^?]+)/.exec(url)?.[1] ?? "request");
}

/** Where a token comes from, for someone who has none (`token create` itself needs one). */
export const NO_TOKEN =
  "BEAMDECK_API_TOKEN is not set: the CLI needs an API token. On a new install `beamdeck init` prints the first admin's " +
  "(also in DATA_DIR/initial-admin.txt). Otherwise ask an admin: they make one in the dashboard (Admin → API tokens) " +
  "or with `beamdeck token create --role viewer` under their own token. Then: export BEAMDECK_API_TOKEN=<token>";

/** `background`: a poll the command does beside its main request, not what it waits for (see deadline.ts). */
export function apiClient(env: Env = process.env, timeoutMs = REQUEST_TIMEOUT_MS, background = false): Api {
  const token = env.BEAMDECK_API_TOKEN;
  if (!token) throw new CliError(NO_TOKEN);
  const base = serverUrl(env);
  return createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${base}/api/trpc`,
        headers: { authorization: `Bearer ${token}` },
        fetch: async (url, init) => {
          const done = background ? () => {} : waitingFor({ what: `the server's reply to ${procedureOf(String(url))}` });
          try {
            return await fetch(url, { ...(init as RequestInit), signal: AbortSignal.timeout(timeoutMs) });
          } finally {
            done();
          }
        },
      }),
    ],
  });
}

/** One line for any failure of an API call. */
export function describeApiError(e: unknown, env: Env = process.env, timeoutMs = REQUEST_TIMEOUT_MS): CliError {
  if (e instanceof CliError) return e;
  if (e instanceof TRPCClientError) {
    const cause = (e.cause ?? {}) as { cause?: { code?: string }; code?: string; name?: string };
    const code = cause.cause?.code ?? cause.code;
    if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EHOSTUNREACH" || e.message === "fetch failed") {
      return new CliError(`cannot reach the beamdeck server at ${serverUrl(env)} (${code ?? "connection failed"}); is it running? (BEAMDECK_URL)`);
    }
    // A request sent but not answered may still have done its work: outcome unknown.
    if (cause.name === "TimeoutError") return new CliError(`the server at ${serverUrl(env)} did not answer within ${timeoutMs / 1000} s; the outcome is unknown`, EXIT.timedOut);
    const data = e.data as { code?: string; httpStatus?: number; beamdeckCode?: string | null } | undefined;
    // A step that kills or has error findings, sent without a gate: the flag to add is in the message.
    if (data?.beamdeckCode === "BD_GATE_REQUIRED") return new CliError(e.message.split("\n")[0], EXIT.usage);
    if (data?.code === "BAD_REQUEST" && e.message.startsWith("[")) {
      try {
        const issues = JSON.parse(e.message) as { path: string[]; message: string }[];
        return new CliError(`invalid input: ${issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`, 2);
      } catch {
        /* not a zod issue list */
      }
    }
    return new CliError(e.message.split("\n")[0] || `request failed (${data?.code ?? "unknown"})`);
  }
  return new CliError((e as Error).message?.split("\n")[0] ?? String(e));
}

/** One API call with the CLI's credentials; any failure becomes one line (CliError). */
export async function call<T>(env: Env, fn: (api: Api) => Promise<T>, timeoutMs = REQUEST_TIMEOUT_MS, background = false): Promise<T> {
  try {
    return await fn(apiClient(env, timeoutMs, background));
  } catch (e) {
    throw describeApiError(e, env, timeoutMs);
  }
}
