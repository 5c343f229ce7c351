/** Small helpers the integration tests share: a bounded wait, a tRPC call's code, the CLI's JSON. */
import { TRPCClientError } from "@trpc/client";

/** `p`, or a rejection naming `what` after `ms` (every remote call in a test has a bound). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** "OK", or the tRPC error code a call fails with (other failures are rethrown). */
export async function codeOf(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "OK";
  } catch (e) {
    if (e instanceof TRPCClientError) return (e.data as { code?: string } | undefined)?.code ?? e.message;
    throw e;
  }
}

/** A CLI command's `--json` output; a non-zero exit throws with its stderr. */
export async function cliJson<T>(server: { cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> }, args: string[]): Promise<T> {
  const r = await server.cli([...args, "--json"]);
  if (r.code !== 0) throw new Error(`beamdeck ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
