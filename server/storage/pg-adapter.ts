/**
 * PostgreSQL through @prisma/adapter-pg, with the `name`-column fix.
 *
 * Prisma's migrate commands read catalog columns of type `name` (OID 19) and
 * `char` (18) that the pg adapter cannot deserialise (prisma/orm#27403);
 * reporting them as `text` (25) is exact for their contents.
 */
import pg from "pg";
import { PrismaPg } from "@prisma/adapter-pg";

const TEXT_OID = 25;
const NAME_OIDS = new Set([18, 19]);

type QueryResultLike = { fields?: { dataTypeID: number }[] } | undefined;

function fixFields(result: unknown): void {
  for (const r of Array.isArray(result) ? result : [result]) {
    for (const f of (r as QueryResultLike)?.fields ?? []) {
      if (NAME_OIDS.has(f.dataTypeID)) f.dataTypeID = TEXT_OID;
    }
  }
}

class NameFixClient extends pg.Client {
  // pg's query has many overloads; only the promise form is used by the adapter.
  override query(...args: unknown[]): never {
    const out = (super.query as (...a: unknown[]) => unknown)(...args);
    if (out && typeof (out as Promise<unknown>).then === "function") {
      return (out as Promise<unknown>).then((r) => {
        fixFields(r);
        return r;
      }) as never;
    }
    return out as never;
  }
}

export function pgAdapter(connectionString: string): PrismaPg {
  const config: pg.PoolConfig = {
    connectionString,
    max: 10,
    Client: NameFixClient as unknown as typeof pg.Client,
  };
  return new PrismaPg(config);
}
