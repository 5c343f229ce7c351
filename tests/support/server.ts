/**
 * A real beamdeck server for tests: `bin/beamdeck.js server` as a child
 * process on a free port, with its own data directory (or PostgreSQL URL),
 * initialised with `beamdeck init` first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, waitFor } from "./ports";
import { run, type RunResult } from "./run";

export const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "bin/beamdeck.js");

/** `beamdeck init` opens and migrates a fresh database: minutes on a loaded machine. */
const INIT_TIMEOUT_MS = 240_000;
const CLI_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 20_000;

/** The CLI as a bounded child process (see run.ts). */
export function runCli(args: string[], env: Record<string, string | undefined>, o: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], { env: env as NodeJS.ProcessEnv, cwd: ROOT, timeoutMs: o.timeoutMs ?? CLI_TIMEOUT_MS, input: o.input, what: `beamdeck ${args.join(" ")}` });
}

export interface TestServer {
  url: string;
  port: number;
  agentUrl: string;
  dataDir: string;
  apiToken: string;
  adminPassword: string;
  env: Record<string, string>;
  log(): string;
  /** The server process id (null while stopped), for /proc readings in benches. */
  pid(): number | null;
  /**
   * Run the CLI against this server; resolves with exit code and output.
   * Bounded: a CLI still running after `timeoutMs` (default 120 s) is killed
   * and the call rejects, naming the command.
   */
  cli(args: string[], extraEnv?: Record<string, string>, opts?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** `fleet`: a fleet pattern (true: "*"). */
  agentToken(label: string, fleet?: boolean | string): Promise<string>;
  stop(): Promise<void>;
  /** Kill -9 (no graceful shutdown), for crash tests. */
  kill(): Promise<void>;
  /** SIGSTOP: the process stops answering, its sockets stay open (a hung instance; `kill` still ends it). */
  pause(): void;
  restart(): Promise<void>;
}

export interface ServerOptions {
  web?: boolean;
  databaseUrl?: string;
  dataDir?: string;
  port?: number;
  env?: Record<string, string>;
}

export async function startServer(opts: ServerOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-srv-"));
  const port = opts.port ?? (await freePort());
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    BEAMDECK_DATA_DIR: dataDir,
    PORT: String(port),
    HOST: "127.0.0.1",
    BEAMDECK_URL: `http://127.0.0.1:${port}`,
    NEXT_TELEMETRY_DISABLED: "1",
    ...(opts.web ? {} : { BEAMDECK_NO_WEB: "1" }),
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
    ...opts.env,
  };
  delete env.BEAMDECK_API_TOKEN;
  if (!opts.databaseUrl) delete env.DATABASE_URL;
  const init = await runCli(["init", "--json"], env, { timeoutMs: INIT_TIMEOUT_MS });
  if (init.code !== 0) throw new Error(`beamdeck init failed: ${init.stderr}`);
  const creds = JSON.parse(init.stdout) as { created: boolean; password?: string; apiToken?: string };
  let apiToken = creds.apiToken ?? "";
  let adminPassword = creds.password ?? "";
  if (!creds.created) {
    const file = fs.readFileSync(path.join(dataDir, "initial-admin.txt"), "utf8");
    apiToken = /BEAMDECK_API_TOKEN=(\S+)/.exec(file)?.[1] ?? "";
    adminPassword = /password=(\S+)/.exec(file)?.[1] ?? "";
  }
  env.BEAMDECK_API_TOKEN = apiToken;

  let child: ChildProcess | null = null;
  let output = "";
  const launch = async () => {
    output += `--- start ${new Date().toISOString()}\n`;
    const c = spawn(process.execPath, [BIN, "server"], { env: env as NodeJS.ProcessEnv, cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    c.stdout?.on("data", (d) => (output += d));
    c.stderr?.on("data", (d) => (output += d));
    await waitFor(
      `server on port ${port} (log:\n${output.slice(-2000)})`,
      async () => {
        if (c.exitCode !== null) throw new Error(`server exited with ${c.exitCode}: ${output.slice(-2000)}`);
        const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null);
        return r?.ok ?? false;
      },
      // tsx compiles the server at start and migrations run: slow on a loaded machine.
      opts.web ? 180_000 : 120_000,
    );
  };
  const waitExit = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r())));
  const stopWith = async (signal: NodeJS.Signals) => {
    const c = child;
    child = null;
    if (!c) return;
    c.kill(signal);
    // Bounded: a server that does not stop on SIGTERM is killed.
    const escalate = setTimeout(() => c.kill("SIGKILL"), STOP_GRACE_MS);
    await waitExit(c);
    clearTimeout(escalate);
  };
  await launch();
  process.once("exit", () => {
    (child as ChildProcess | null)?.kill("SIGKILL");
  });

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    agentUrl: `ws://127.0.0.1:${port}/agent`,
    dataDir,
    apiToken,
    adminPassword,
    env,
    log: () => output,
    pid: () => (child as ChildProcess | null)?.pid ?? null,
    cli(args, extraEnv = {}, o = {}) {
      return runCli(args, { ...env, ...extraEnv }, o);
    },
    async agentToken(label, fleet = false) {
      const r = await runCli(["agent-token", "create", label, ...(fleet ? ["--fleet", fleet === true ? "*" : fleet] : []), "--json"], env);
      if (r.code !== 0) throw new Error(`agent-token create failed: ${r.stderr}`);
      return (JSON.parse(r.stdout) as { token: string }).token;
    },
    stop: () => stopWith("SIGTERM"),
    kill: () => stopWith("SIGKILL"),
    pause: () => {
      child?.kill("SIGSTOP");
    },
    async restart() {
      await stopWith("SIGTERM");
      await launch();
    },
  };
}
