/**
 * A real PostgreSQL server for tests: Debian's binaries, a temporary cluster
 * on a free loopback port, run as the postgres user (initdb refuses root).
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports";

export interface TestPostgres {
  url: string;
  port: number;
  /** A fresh database on the cluster, as a URL. */
  createDatabase(name: string): string;
  stop(): void;
}

function pgBin(): string {
  const root = "/usr/lib/postgresql";
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (fs.existsSync(path.join(root, v, "bin/initdb"))) return path.join(root, v, "bin");
  throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)");
}

function asPostgres(cmd: string, args: string[]): string {
  const isRoot = process.getuid?.() === 0;
  const file = isRoot ? "runuser" : cmd;
  const argv = isRoot ? ["-u", "postgres", "--", cmd, ...args] : args;
  return execFileSync(file, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = pgBin();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "beamdeck-pg-"));
  if (process.getuid?.() === 0) execFileSync("chown", ["-R", "postgres", dir]);
  const data = path.join(dir, "data");
  const port = await freePort();
  asPostgres(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
  asPostgres(path.join(bin, "pg_ctl"), ["-D", data, "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "-l", path.join(dir, "log"), "-w", "start"]);
  const stop = () => {
    spawnSync(process.getuid?.() === 0 ? "runuser" : path.join(bin, "pg_ctl"), process.getuid?.() === 0 ? ["-u", "postgres", "--", path.join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop"] : ["-D", data, "-m", "immediate", "stop"], { stdio: "ignore" });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", stop);
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    createDatabase(name: string) {
      asPostgres(path.join(bin, "psql"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-c", `CREATE DATABASE "${name}"`]);
      return `postgresql://postgres@127.0.0.1:${port}/${name}`;
    },
    stop,
  };
}
