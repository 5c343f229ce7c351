/** Roles nest: admin ⊇ operator ⊇ viewer. */
import { z } from "zod";

export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];
export const roleSchema = z.enum(ROLES);

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function hasRole(actual: Role, needed: Role): boolean {
  return RANK[actual] >= RANK[needed];
}

/** The lower of two roles: what a token may do when its owner's role is lower than its own. */
export function lowerRole(a: Role, b: Role): Role {
  return RANK[a] <= RANK[b] ? a : b;
}

export function asRole(value: string): Role {
  const parsed = roleSchema.safeParse(value);
  if (!parsed.success) throw new Error(`unknown role "${value}" (viewer, operator or admin)`);
  return parsed.data;
}

/** What each role may do, in words, for the dashboard's "why can't I" hints. */
export const ROLE_CAN: Record<Role, string> = {
  viewer: "see nodes, processes, events, alerts, upgrades and the audit log",
  operator: "also run upgrade steps and acknowledge or resolve alerts",
  admin: "also manage users, tokens, alert rules and webhooks",
};
