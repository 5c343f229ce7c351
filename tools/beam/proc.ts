/**
 * OS processes for the BEAM harness that cannot outlive the harness.
 *
 * Each guarded process runs in its own process group under a tiny `sh`
 * wrapper whose stdin is a pipe from this process. If this process dies in
 * any way (even SIGKILL, when no `exit` handler runs), the pipe closes and
 * the wrapper takes its child down. `kill()` signals the whole group, which
 * reaches everything the child started (erl_child_setup, inet_gethost, …).
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

// The harness holds fd 3 (our stdin, duplicated) open; when `read` sees
// EOF the harness is gone and the child is stopped, then killed. A signal
// to the wrapper is passed on to the child, and the wrapper waits for (and
// reaps) the child before it exits, so its exit means the child is gone.
const GUARD = `
exec 3<&0
"$@" </dev/null &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
( while read -r _; do :; done; kill -TERM "$child" 2>/dev/null; sleep 3; kill -KILL "$child" 2>/dev/null ) <&3 &
watcher=$!
exec 3<&-
while :; do
  wait "$child"
  rc=$?
  kill -0 "$child" 2>/dev/null || break
done
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
exit $rc
`;

export interface GuardedOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File descriptor (e.g. an opened log file) or "ignore"; default "ignore". */
  stdout?: number | "ignore";
  stderr?: number | "ignore";
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Guarded {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  alive(): boolean;
  /**
   * Sends `signal` to the child (through the wrapper); after `graceMs`
   * SIGKILLs the whole group. Resolves once the child has exited, after a
   * final SIGKILL to anything left in its group.
   */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const live = new Set<number>();
const exitCallbacks = new Set<() => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pgid of live) {
      try {
        process.kill(-pgid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const cb of exitCallbacks) cb();
  });
}

/**
 * Runs `cb` (synchronously) when this process exits normally; returns a
 * function that cancels it. For children that are not guarded.
 */
export function onProcessExit(cb: () => void): () => void {
  installExitHook();
  exitCallbacks.add(cb);
  return () => exitCallbacks.delete(cb);
}

/** Spawns `cmd args` in its own process group, guarded as described above. */
export function spawnGuarded(cmd: string, args: readonly string[], opts: GuardedOptions = {}): Guarded {
  installExitHook();
  const child: ChildProcess = spawn("/bin/sh", ["-c", GUARD, "beamdeck-guard", cmd, ...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ["pipe", opts.stdout ?? "ignore", opts.stderr ?? "ignore"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot spawn ${cmd}`);
  live.add(pid);
  // The pipe must not keep this process alive, nor its errors crash it.
  child.stdin?.on("error", () => {});
  const exited = new Promise<ExitInfo>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
    child.on("error", () => resolve({ code: null, signal: null }));
  });
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  const killGroup = (): void => {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // nothing left in the group
    }
  };
  let wrapperDone = false;
  void exited.then(() => {
    wrapperDone = true;
    // Whatever the child started and left behind goes with it.
    killGroup();
    live.delete(pid);
  });

  return {
    pid,
    exited,
    alive: () => !wrapperDone,
    async kill(signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> {
      if (!wrapperDone) {
        try {
          process.kill(pid, signal);
        } catch {
          // raced with its exit
        }
        const grace = new AbortController();
        const timer = sleep(graceMs, "timeout" as const, { signal: grace.signal }).catch(() => "exited" as const);
        const res = await Promise.race([exited.then(() => "exited" as const), timer]);
        grace.abort();
        if (res === "timeout") killGroup();
        await exited;
      }
    },
  };
}
