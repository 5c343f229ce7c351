/**
 * A private epmd per test run, so that nodes of runs side by side (and of a
 * developer's own shell) never meet. Nodes and probes find it through
 * ERL_EPMD_PORT.
 *
 * @module
 */
import { spawnGuarded, type Guarded } from "./proc";
import { freePort, waitForPort } from "./tcp";

export interface Epmd {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts `epmd -port PORT` in the foreground (guarded; dies with this process). */
export async function startEpmd(port?: number): Promise<Epmd> {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const p = port ?? (await freePort());
    const proc: Guarded = spawnGuarded("epmd", ["-port", String(p)]);
    const up = waitForPort(p, 5000).then(() => true);
    const died = proc.exited.then(() => false);
    try {
      if (await Promise.race([up, died])) {
        return { port: p, stop: () => proc.kill("SIGTERM", 2000) };
      }
      lastError = new Error(`epmd -port ${p} exited at once (port taken?)`);
    } catch (err) {
      lastError = err;
      await proc.kill("SIGTERM", 2000);
    }
    if (port !== undefined) break;
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

let shared: Promise<Epmd> | null = null;

/** One private epmd for this process, started on first use. */
export function sharedEpmd(): Promise<Epmd> {
  shared ??= startEpmd().catch((err: unknown) => {
    shared = null;
    throw err;
  });
  return shared;
}

/** Stops the shared epmd, if one was started. */
export async function stopSharedEpmd(): Promise<void> {
  const p = shared;
  shared = null;
  if (p) await (await p.catch(() => null))?.stop();
}
