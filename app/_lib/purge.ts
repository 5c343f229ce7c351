/**
 * A purge choice as an operator types it, `Module=soft` or `Module=brutal`
 * (`soft_purge`/`brutal_purge` as the appup spells them): one syntax for the
 * CLI's `--purge`/`--pre-purge` and the Rollouts page's field.
 */
import type { Purge } from "../../server/upgrades/plan-schema";

/** One entry, or null when it is not `Module=soft|brutal`. */
export function parsePurgeEntry(text: string): { module: string; purge: Purge } | null {
  const m = /^([^=]+)=(soft|brutal)(?:_purge)?$/.exec(text.trim());
  const module = m?.[1].trim();
  return m && module ? { module, purge: m[2] as Purge } : null;
}

/** What a bad entry is told. */
export function purgeEntryError(text: string): string {
  return `"${text}" is not Module=soft or Module=brutal`;
}
