/**
 * Which database to use. PostgreSQL only when the user set a postgres URL;
 * otherwise the embedded PGlite in BEAMDECK_DATA_DIR (default ./data).
 * Read before anything sets a placeholder DATABASE_URL (prisma.config.ts does,
 * for the CLI), so the placeholder never switches the adapter.
 */
import path from "node:path";

export type Env = Record<string, string | undefined>;

export type DatabaseChoice = { kind: "postgres"; url: string } | { kind: "pglite"; dataDir: string };

export const PGLITE_PLACEHOLDER_URL = "postgresql://pglite@localhost/pglite";

export function chooseDatabase(env: Env = process.env): DatabaseChoice {
  const url = env.DATABASE_URL;
  if (url && url !== PGLITE_PLACEHOLDER_URL && /^postgres(ql)?:\/\//.test(url)) {
    return { kind: "postgres", url };
  }
  return { kind: "pglite", dataDir: path.join(dataDir(env), "db") };
}

export function dataDir(env: Env = process.env): string {
  return path.resolve(env.BEAMDECK_DATA_DIR || "./data");
}

export function describeDatabase(choice: DatabaseChoice): string {
  if (choice.kind === "pglite") return `embedded PGlite at ${choice.dataDir}`;
  const u = new URL(choice.url);
  return `PostgreSQL at ${u.hostname}:${u.port || 5432}${u.pathname}`;
}
