/**
 * The Prisma client for this process: PGlite by default, PostgreSQL when the
 * user set DATABASE_URL. One instance per process, kept on globalThis so that
 * code bundled separately (Next's server components) shares it.
 */
import type { Env } from "./database-url";
import { PrismaClient } from "../../generated/prisma/client";
import { chooseDatabase, describeDatabase, type DatabaseChoice } from "./database-url";
import { acquireLock } from "./lock";
import { applyMigrations } from "./migrate";
import { PGliteAdapterFactory } from "./pglite-adapter";
import { pgAdapter } from "./pg-adapter";
import path from "node:path";

export type Db = PrismaClient;

export interface OpenDatabase {
  prisma: PrismaClient;
  choice: DatabaseChoice;
  description: string;
  migrationsApplied: string[];
  close(): Promise<void>;
}

const GLOBAL_KEY = Symbol.for("beamdeck.database");
type Holder = { [GLOBAL_KEY]?: OpenDatabase };

/**
 * Open (and migrate) the database. `role` names the holder in the embedded
 * database's lock file ("server", "cli").
 */
export async function openDatabase(role: string, env: Env = process.env): Promise<OpenDatabase> {
  const existing = (globalThis as Holder)[GLOBAL_KEY];
  if (existing) return existing;
  const choice = chooseDatabase(env);
  let releaseLock = () => {};
  let prisma: PrismaClient;
  let pglite: PGliteAdapterFactory | null = null;
  if (choice.kind === "pglite") {
    releaseLock = acquireLock(path.dirname(choice.dataDir), role);
    pglite = new PGliteAdapterFactory(choice.dataDir);
    prisma = new PrismaClient({ adapter: pglite });
  } else {
    prisma = new PrismaClient({ adapter: pgAdapter(choice.url) });
  }
  let migrationsApplied: string[];
  try {
    migrationsApplied = await applyMigrations(prisma);
  } catch (e) {
    await prisma.$disconnect().catch(() => {});
    await pglite?.close();
    releaseLock();
    throw e;
  }
  const db: OpenDatabase = {
    prisma,
    choice,
    description: describeDatabase(choice),
    migrationsApplied,
    async close() {
      delete (globalThis as Holder)[GLOBAL_KEY];
      await prisma.$disconnect();
      await pglite?.close();
      releaseLock();
    },
  };
  (globalThis as Holder)[GLOBAL_KEY] = db;
  return db;
}

/** The already-open database (the server opens it at start-up). */
export function currentDatabase(): OpenDatabase {
  const db = (globalThis as Holder)[GLOBAL_KEY];
  if (!db) throw new Error("database not open: openDatabase() must run first");
  return db;
}
