"use client";
/**
 * Page state kept in the query string (filters, the open detail, the
 * reviewed upgrade's choices), so a view can be linked to and survives a
 * reload. Read at mount from `window.location` (the providers render on the
 * client only), written back with `history.replaceState`. The one place the
 * dashboard reads and writes its URL parameters.
 */
import { useCallback, useEffect, useState } from "react";

export type UrlState<K extends string> = Record<K, string>;

function read<K extends string>(keys: readonly K[]): UrlState<K> {
  const q = new URLSearchParams(window.location.search);
  return Object.fromEntries(keys.map((k) => [k, q.get(k) ?? ""])) as UrlState<K>;
}

function same<K extends string>(a: UrlState<K>, b: UrlState<K>): boolean {
  const ka = Object.keys(a) as K[];
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/**
 * `scope` names what the state belongs to (the node of a node page): when it
 * changes without a remount (client-side navigation), the state is read
 * from the new URL again.
 */
export function useUrlState<K extends string>(keys: readonly K[], scope = ""): [UrlState<K>, (patch: Partial<Record<K, string | null>>) => void] {
  const [held, setHeld] = useState(() => ({ scope, values: read(keys) }));
  const keyList = keys.join("\n");
  useEffect(() => {
    // A client-side navigation sets the new URL after the new page's first render: read it again once mounted.
    const now = read(keyList.split("\n") as K[]);
    setHeld((prev) => (prev.scope === scope && same(prev.values, now) ? prev : { scope, values: now }));
  }, [keyList, scope]);
  const values = held.values;
  const update = useCallback((patch: Partial<Record<K, string | null>>) => {
    setHeld((prev) => {
      const next = { ...prev.values };
      for (const [k, v] of Object.entries(patch) as [K, string | null | undefined][]) next[k] = v ?? "";
      const url = new URL(window.location.href);
      for (const [k, v] of Object.entries(next) as [K, string][]) {
        if (v) url.searchParams.set(k, v);
        else url.searchParams.delete(k);
      }
      window.history.replaceState(window.history.state, "", url);
      return { scope: prev.scope, values: next };
    });
  }, []);
  return [values, update];
}

/** One parameter: its value (null when absent) and a setter. */
export function useUrlParam(key: string, scope = ""): [string | null, (value: string | null) => void] {
  const [state, update] = useUrlState([key], scope);
  const set = useCallback((value: string | null) => update({ [key]: value }), [update, key]);
  return [state[key] || null, set];
}
