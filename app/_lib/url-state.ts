"use client";
/**
 * Page state kept in the query string (filters, the open detail), so a view
 * can be linked to and survives a reload. Read once at mount from
 * `window.location` (the providers render on the client only), written back
 * with `history.replaceState`.
 */
import { useCallback, useState } from "react";

export type UrlState<K extends string> = Record<K, string>;

function read<K extends string>(keys: readonly K[]): UrlState<K> {
  const q = new URLSearchParams(window.location.search);
  return Object.fromEntries(keys.map((k) => [k, q.get(k) ?? ""])) as UrlState<K>;
}

export function useUrlState<K extends string>(keys: readonly K[]): [UrlState<K>, (patch: Partial<Record<K, string | null>>) => void] {
  const [state, setState] = useState<UrlState<K>>(() => read(keys));
  const update = useCallback((patch: Partial<Record<K, string | null>>) => {
    setState((prev) => {
      const next = { ...prev };
      for (const [k, v] of Object.entries(patch) as [K, string | null | undefined][]) next[k] = v ?? "";
      const url = new URL(window.location.href);
      for (const [k, v] of Object.entries(next) as [K, string][]) {
        if (v) url.searchParams.set(k, v);
        else url.searchParams.delete(k);
      }
      window.history.replaceState(window.history.state, "", url);
      return next;
    });
  }, []);
  return [state, update];
}
