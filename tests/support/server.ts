/**
 * A real beamdeck server for tests: `bin/beamdeck.js server` as a child
 * process on a free port, with its own data directory (or PostgreSQL URL),
 * initialised with `beamdeck init` first.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, waitFor } from "./ports";

export const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "bin/beamdeck.js");

export interface TestServer {
  url: string;
  port: number;
  agentUrl: string;
  dataDir: string;
  apiToken: string;
  adminPassword: string;
  env: Record<string, string>;
  log(): string;
  /** Run the CLI against this server; returns exit code and output. */
  cli(args: string[], extraEnv?: Record<string, string>): { code: number; stdout: string; stderr: string };
  /** `fleet`: a fleet pattern (true: "*"). */
  agentToken(label: string, fleet?: boolean | string): string;
  stop(): Promise<void>;
  /** Kill -9 (no graceful shutdown), for crash tests. */
  kill(): Promise<void>;
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
  const init = spawnSync(process.execPath, [BIN, "init", "--json"], { env: env as NodeJS.ProcessEnv, encoding: "utf8", cwd: ROOT });
  if (init.status !== 0) throw new Error(`beamdeck init failed: ${init.stderr}`);
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
      // Generous: on a loaded CI machine a cold start (migrations) can take a minute.
      opts.web ? 180_000 : 120_000,
    );
  };
  const waitExit = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r())));
  const stopWith = async (signal: NodeJS.Signals) => {
    const c = child;
    child = null;
    if (!c) return;
    c.kill(signal);
    await waitExit(c);
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
    cli(args, extraEnv = {}) {
      const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv } as NodeJS.ProcessEnv, encoding: "utf8", cwd: ROOT });
      return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
    },
    agentToken(label, fleet = false) {
      const r = spawnSync(process.execPath, [BIN, "agent-token", "create", label, ...(fleet ? ["--fleet", fleet === true ? "*" : fleet] : []), "--json"], { env: env as NodeJS.ProcessEnv, encoding: "utf8", cwd: ROOT });
      if (r.status !== 0) throw new Error(`agent-token create failed: ${r.stderr}`);
      return (JSON.parse(r.stdout) as { token: string }).token;
    },
    stop: () => stopWith("SIGTERM"),
    kill: () => stopWith("SIGKILL"),
    async restart() {
      await stopWith("SIGTERM");
      await launch();
    },
  };
}
