/**
 * Reading JSON the server stored (DB JSON columns, recorded agent data):
 * parsed with the one schema of what was written, typed by its known
 * fields so tRPC's output types keep them.
 */
import type { z } from "zod";

/**
 * A parsed value typed by its known fields only. The schemas are `.loose()`
 * (a newer agent's fields pass through), and tRPC's output types drop the
 * optional fields of an object with an index signature: without this the
 * page could not read `deaths.watched` or `verification` from the history.
 */
export type Known<T> = T extends readonly unknown[]
  ? { [K in keyof T]: Known<T[K]> } // arrays and tuples keep their shape
  : T extends object
    ? keyof Named<T> extends never
      ? { [K in keyof T]: Known<T[K]> } // a record: its index signature is all it has
      : { [K in keyof T as string extends K ? never : K]: Known<T[K]> }
    : T;
type Named<T> = { [K in keyof T as string extends K ? never : K]: T[K] };

/** A parsed value as its known fields (see Known). */
export function known<T>(value: T): Known<T> {
  // Type plumbing only: Known<T> is T without index signatures, which TypeScript cannot see through for a generic T.
  return value as Known<T>;
}

/** Parse a stored column; an old row that does not match reads as `empty`, with a warning. */
export function readColumn<S extends z.ZodType>(what: string, schema: S, value: unknown, empty: Known<z.infer<S>>): Known<z.infer<S>> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return known(parsed.data);
  const issue = parsed.error.issues[0];
  console.warn(`[beamdeck] stored ${what} does not match its schema (${issue?.path.join(".") || "value"}: ${issue?.message}); read as empty`);
  return empty;
}
