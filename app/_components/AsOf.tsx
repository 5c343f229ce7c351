"use client";
/** "as of 14:03:27 UTC+1 (5 s ago)": when live data was read, with its zone, ageing every second. */
import { ago, clockZone, zoneLabel } from "../_lib/format";
import { useNow } from "../_lib/hooks";

export function AsOf({ at }: { at: number | null | undefined }) {
  const now = useNow(1000);
  if (!at) return null;
  return (
    <span className="as-of" data-testid="as-of" data-at={at} title={new Date(at).toISOString()}>
      as of {clockZone(at)} ({ago(at, now)})
    </span>
  );
}

/** A table header for local times, naming the zone they are in. */
export function TimeHeader({ label = "Time" }: { label?: string }) {
  // The server renders in its own zone; the browser's replaces it.
  return (
    <th data-testid="time-header" suppressHydrationWarning>
      {`${label} (${zoneLabel()})`}
    </th>
  );
}
