/**
 * Child processes for tests, always asynchronous and always bounded: a sync
 * spawn would stop vitest's own timeout from firing (issue 18). A child
 * still running at its deadline is killed, and the test fails saying what it
 * waited for, with the child's pid, command line and last output.
 */
import { spawn } from "node:child_process";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  /** Default 60 s. */
  timeoutMs?: number;
  /** What the test waits for, for the failure message; default the command line. */
  what?: string;
}

/** Children running now (pid → command line), for a report when something hangs. */
export const runningChildren = new Map<number, string>();

const tail = (s: string, n = 1500) => (s.length > n ? `…${s.slice(-n)}` : s);

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const line = [cmd, ...args].join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdin.on("error", () => {}); // a child that exits without reading its input
    child.stdin.end(opts.input ?? "");
    if (child.pid !== undefined) runningChildren.set(child.pid, line);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      if (child.pid !== undefined) runningChildren.delete(child.pid);
      reject(new Error(`${opts.what ?? line}: could not start: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) runningChildren.delete(child.pid);
      if (timedOut) {
        reject(new Error(`${opts.what ?? line} did not finish within ${timeoutMs / 1000} s; killed pid ${child.pid} (${line})\nstdout: ${tail(stdout)}\nstderr: ${tail(stderr)}`));
      } else resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

// A test worker that ends (or is ended) takes its children with it.
process.once("exit", () => {
  for (const pid of runningChildren.keys()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
});
