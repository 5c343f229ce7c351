/** Commands that open the database themselves (no running server needed). */
import type { Env } from "../storage/database-url";
import { DatabaseBusyError } from "../storage/lock";
import { openDatabase, type OpenDatabase } from "../storage/db";
import { CliError } from "./errors";

export async function withLocalDatabase<T>(env: Env, fn: (db: OpenDatabase) => Promise<T>): Promise<T> {
  let db: OpenDatabase;
  try {
    db = await openDatabase("cli", env);
  } catch (e) {
    if (e instanceof DatabaseBusyError) throw new CliError(e.message);
    throw new CliError(`cannot open the database: ${(e as Error).message.split("\n")[0]}`);
  }
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
