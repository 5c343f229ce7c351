/**
 * Applies prisma/migrations at start-up, on PGlite and PostgreSQL alike.
 *
 * Bookkeeping uses Prisma's own `_prisma_migrations` table and checksums, so
 * `prisma migrate status` agrees with us. Each migration runs in one
 * transaction under an advisory lock: several server instances starting at
 * once against one PostgreSQL apply it exactly once, and a failing migration
 * leaves nothing half-applied.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { PrismaClient } from "../../generated/prisma/client";
import { splitSqlStatements } from "./sql-split";

export const MIGRATIONS_DIR = path.resolve(import.meta.dirname, "../../prisma/migrations");
const LOCK_KEY = 7_431_337_001; // arbitrary, constant: "beamdeck migrations"

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum" VARCHAR(64) NOT NULL,
  "finished_at" TIMESTAMPTZ,
  "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT,
  "rolled_back_at" TIMESTAMPTZ,
  "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const file = path.join(dir, name, "migration.sql");
      const sql = fs.readFileSync(file, "utf8");
      return { name, sql, checksum: crypto.createHash("sha256").update(sql).digest("hex") };
    });
}

export class MigrationError extends Error {
  constructor(
    readonly migration: string,
    cause: unknown,
  ) {
    super(`migration ${migration} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "MigrationError";
  }
}

/** Apply every pending migration; returns the names applied now. */
export async function applyMigrations(prisma: PrismaClient, dir = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = readMigrations(dir);
  await prisma.$executeRawUnsafe(CREATE_TABLE);
  const applied: string[] = [];
  for (const m of migrations) {
    const done = await prisma.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
        const rows = await tx.$queryRawUnsafe<{ checksum: string }[]>(
          `SELECT checksum FROM "_prisma_migrations" WHERE migration_name = $1 AND finished_at IS NOT NULL AND rolled_back_at IS NULL`,
          m.name,
        );
        if (rows.length > 0) {
          if (rows[0].checksum !== m.checksum) {
            throw new MigrationError(m.name, new Error("already applied with a different checksum (the file was edited after it ran)"));
          }
          return false;
        }
        const statements = splitSqlStatements(m.sql);
        try {
          for (const stmt of statements) await tx.$executeRawUnsafe(stmt);
        } catch (e) {
          throw new MigrationError(m.name, e);
        }
        await tx.$executeRawUnsafe(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ($1, $2, now(), $3, now(), $4)`,
          crypto.randomUUID(),
          m.checksum,
          m.name,
          statements.length,
        );
        return true;
      },
      { timeout: 120_000, maxWait: 60_000 },
    );
    if (done) applied.push(m.name);
  }
  return applied;
}
