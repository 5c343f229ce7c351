/**
 * The Prisma client for this process: PGlite by default, PostgreSQL when the
 * user set DATABASE_URL. One instance per process, kept on globalThis so that
 * code bundled separately (Next's server components) shares it.
 */
import type { Env } from "./database-url";
import { PrismaClient } from "../../generated/prisma/client";
import { chooseDatabase, dataDir, describeDatabase, type DatabaseChoice } from "./database-url";
import { restrictUmask, secureDataDir, secureDataDirLoudly } from "./file-modes";
import { acquireLock } from "./lock";
import { applyMigrations } from "./migrate";
import { PGliteAdapterFactory } from "./pglite-adapter";
import { pgAdapter } from "./pg-adapter";
import { loadSecretKey, setActiveSecretKey, type SecretKey } from "./secret-key";
import { anchorAuditHead, AUDIT_HEAD_MIGRATION } from "../audit/head";
import fs from "node:fs";
import path from "node:path";

export type Db = PrismaClient;

export interface OpenDatabase {
  prisma: PrismaClient;
  choice: DatabaseChoice;
  description: string;
  migrationsApplied: string[];
  secretKey: SecretKey;
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
  // Before PGlite (or the lock, or the key file) creates anything: private files only.
  restrictUmask();
  const dir = dataDir(env);
  if (choice.kind === "pglite" || fs.existsSync(dir)) secureDataDirLoudly(dir);
  const key = loadSecretKey(env, { create: true });
  if (key.created) console.error(`[beamdeck] created the secret key ${key.source} (mode 600); instances sharing a database must share it (BEAMDECK_SECRET_KEY)`);
  setActiveSecretKey(key);
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
    // The audit head arrived with this migration: anchor the log as it stands now.
    if (migrationsApplied.includes(AUDIT_HEAD_MIGRATION)) await anchorAuditHead(prisma);
    // PGlite ignores the umask: it unpacks its initial files 0666 and writes
    // pg_internal.init 0644. Its own files are made private here, quietly;
    // the loud check above is for what was found before we opened.
    if (pglite) secureDataDir(dir);
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
    secretKey: key,
    async close() {
      delete (globalThis as Holder)[GLOBAL_KEY];
      setActiveSecretKey(null);
      await prisma.$disconnect();
      await pglite?.close();
      if (pglite) secureDataDir(dir);
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
