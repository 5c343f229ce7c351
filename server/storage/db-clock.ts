/**
 * The database's clock in SQL, as timestamp columns store times (UTC, no
 * zone, whatever the session's zone). Expiries that several instances
 * compare (the node upgrade lock, a rollout's claim) use it, so instances
 * whose own clocks are apart still agree on whether something has expired.
 */
export const DB_NOW = `(now() AT TIME ZONE 'UTC')::timestamp(3)`;

/** The database's now plus the milliseconds in SQL parameter `param` (an integer). */
export const dbNowPlus = (param: string) => `((now() AT TIME ZONE 'UTC') + (${param}::int * interval '1 millisecond'))::timestamp(3)`;
