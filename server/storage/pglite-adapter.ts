/**
 * PGlite as a Prisma driver adapter, fixed for migrations and clean exits.
 *
 * pglite-prisma-adapter 0.6.1 does not await `executeScript`, sends shadow
 * migrations (multi-statement scripts) through `query()`, and its PGlite keeps
 * re-arming a 10 s timer unless started with log_startup_progress_interval=0.
 * This wrapper mends the three (see ../shared/notes/stack-recipe.md) and opens
 * the database lazily, closing it when the last user disposes.
 */
import fs from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPGlite } from "pglite-prisma-adapter";
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory, SqlQuery } from "@prisma/driver-adapter-utils";

// pglite-prisma-adapter bundles an older driver-adapter-utils; its classes are
// the same at runtime, so they are typed with the version Prisma uses.
type Adapter = SqlDriverAdapter;
type RawQuery = SqlQuery;

async function connectInner(db: PGlite): Promise<Adapter> {
  return (await new PrismaPGlite(db).connect()) as unknown as Adapter;
}

const START_PARAMS = [...PGlite.defaultStartParams, "-c", "log_startup_progress_interval=0"];

export function openPGlite(dataDir: string): PGlite {
  if (!dataDir.startsWith("memory://")) fs.mkdirSync(dataDir, { recursive: true });
  return new PGlite({ dataDir, startParams: START_PARAMS } as ConstructorParameters<typeof PGlite>[0]);
}

function patch(adapter: Adapter, db: PGlite, onDispose: () => Promise<void>): Adapter {
  const executeRaw = adapter.executeRaw.bind(adapter);
  adapter.executeScript = async (script: string) => {
    await db.exec(script);
  };
  adapter.executeRaw = async (query: RawQuery) => {
    if (query.args.length === 0) {
      await db.exec(query.sql);
      return 0;
    }
    return executeRaw(query);
  };
  adapter.dispose = onDispose;
  return adapter;
}

/** A Prisma adapter factory over one PGlite data directory. */
export class PGliteAdapterFactory implements SqlMigrationAwareDriverAdapterFactory {
  readonly provider = "postgres" as const;
  readonly adapterName = "beamdeck-pglite";
  private db: PGlite | null = null;
  private users = 0;

  constructor(private readonly dataDir: string) {}

  /** The open PGlite instance (opened on first use). */
  pglite(): PGlite {
    this.db ??= openPGlite(this.dataDir);
    return this.db;
  }

  async connect(): Promise<Adapter> {
    const db = this.pglite();
    this.users += 1;
    const inner = await connectInner(db);
    return patch(inner, db, () => this.release());
  }

  async connectToShadowDb(): Promise<Adapter> {
    const shadow = openPGlite("memory://");
    const inner = await connectInner(shadow);
    return patch(inner, shadow, () => shadow.close());
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    this.users = 0;
    if (db && !db.closed) await db.close();
  }

  private async release(): Promise<void> {
    this.users -= 1;
    if (this.users <= 0) await this.close();
  }
}
