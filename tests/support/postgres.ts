/**
 * A real PostgreSQL server for tests: Debian's binaries, a temporary cluster
 * on a free loopback port, run as the postgres user (initdb refuses root).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports";
import { run } from "./run";

export interface TestPostgres {
  url: string;
  port: number;
  /** A fresh database on the cluster, as a URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

function pgBin(): string {
  const root = "/usr/lib/postgresql";
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (fs.existsSync(path.join(root, v, "bin/initdb"))) return path.join(root, v, "bin");
  throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)");
}

/** Run a PostgreSQL program as the postgres user; bounded, and fails with its output. */
async function asPostgres(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const isRoot = process.getuid?.() === 0;
  const file = isRoot ? "runuser" : cmd;
  const argv = isRoot ? ["-u", "postgres", "--", cmd, ...args] : args;
  const r = await run(file, argv, { timeoutMs, what: path.basename(cmd) });
  if (r.code !== 0) throw new Error(`${path.basename(cmd)} exited with ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = pgBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-pg-"));
  if (process.getuid?.() === 0) fs.chownSync(dir, Number((await run("id", ["-u", "postgres"])).stdout.trim()), Number((await run("id", ["-g", "postgres"])).stdout.trim()));
  const data = path.join(dir, "data");
  const port = await freePort();
  await asPostgres(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"], 120_000);
  await asPostgres(path.join(bin, "pg_ctl"), ["-D", data, "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "-l", path.join(dir, "log"), "-w", "start"]);
  const stopArgs = ["-D", data, "-m", "immediate", "stop"];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await asPostgres(path.join(bin, "pg_ctl"), stopArgs).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Last resort when the test process ends without afterAll (an exit hook cannot wait for a promise).
  process.once("exit", () => {
    if (stopped) return;
    const isRoot = process.getuid?.() === 0;
    spawnSync(isRoot ? "runuser" : path.join(bin, "pg_ctl"), isRoot ? ["-u", "postgres", "--", path.join(bin, "pg_ctl"), ...stopArgs] : stopArgs, { stdio: "ignore", timeout: 10_000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    async createDatabase(name: string) {
      await asPostgres(path.join(bin, "psql"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-c", `CREATE DATABASE "${name}"`]);
      return `postgresql://postgres@127.0.0.1:${port}/${name}`;
    },
    stop,
  };
}
