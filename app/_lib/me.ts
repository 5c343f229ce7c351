"use client";
/**
 * Who is looking, and what their role lets them do. The server enforces
 * every role on every call; the dashboard only uses this to hide what would
 * be refused and to say why.
 */
import { useQuery } from "@tanstack/react-query";
import { asRole, hasRole, type Role } from "../../server/auth/roles";
import { useTRPC } from "./trpc";

export { asRole, type Role };
/** Lowest first, for pickers (the server's order). */
export { ROLES } from "../../server/auth/roles";

/** Roles nest: admin ⊇ operator ⊇ viewer (the server's order, server/auth/roles.ts). */
export function roleAtLeast(actual: Role | null | undefined, needed: Role): boolean {
  return actual ? hasRole(actual, needed) : false;
}

/** "operator" → "Operators", for hints. */
export function rolePlural(role: Role): string {
  return `${role[0].toUpperCase()}${role.slice(1)}s`;
}

/** What a role adds, in the words the hints use (the server's `auth.me.can` says the same for one's own role). */
export const ROLE_ADDS: Record<Role, string> = {
  viewer: "see nodes, processes, events, alerts, upgrades and the audit log",
  operator: "run upgrade steps and acknowledge or resolve alerts",
  admin: "manage users, tokens, alert rules and webhooks",
};

/** auth.me, cached for a minute (shared with the shell's user menu). */
export function useMe() {
  const trpc = useTRPC();
  return useQuery(trpc.auth.me.queryOptions(undefined, { staleTime: 60_000 }));
}

/** The current role (null while loading) and a check against it. */
export function useRole(): { role: Role | null; name: string | null; can: (needed: Role) => boolean; loading: boolean } {
  const me = useMe();
  const role = me.data?.role ?? null;
  return { role, name: me.data?.name ?? null, can: (needed) => roleAtLeast(role, needed), loading: me.isPending };
}
