/**
 * The operator's purge choices as they travel in the page's URL
 * (`?post=Elixir.TestListener:soft,mod_b:brutal&pre=…`, issue 14 item 8), so
 * a reload or a shared link shows exactly what was reviewed. A choice equal
 * to the relup's own setting is no choice: it drops out of the URL and of
 * the plan's query key.
 */
import type { Purge, PurgeMap } from "./types";

/** Module names are atoms: at most 255 characters; the URL holds at most this many choices. */
const MAX_CHOICES = 200;

export function decodeChoices(text: string): PurgeMap {
  const out: PurgeMap = {};
  for (const part of text.split(",").slice(0, MAX_CHOICES)) {
    const at = part.lastIndexOf(":");
    if (at <= 0) continue;
    const module = part.slice(0, at);
    const value = part.slice(at + 1);
    // An unknown value in a hand-edited link is no choice (the relup's setting applies), never a guess.
    if (module.length <= 255 && (value === "soft" || value === "brutal")) out[module] = value;
  }
  return out;
}

export function encodeChoices(map: PurgeMap): string | null {
  const parts = Object.entries(map)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([m, v]) => `${m}:${v}`);
  return parts.length ? parts.join(",") : null;
}

export function withChoice(c: PurgeMap, module: string, v: Purge, dflt: Purge | undefined): PurgeMap {
  const next = { ...c };
  if (v === (dflt ?? "brutal")) delete next[module];
  else next[module] = v;
  return next;
}
