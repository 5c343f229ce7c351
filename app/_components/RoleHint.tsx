"use client";
/**
 * What a role cannot do, said instead of a button that would be refused:
 * "Operators can acknowledge — you are a viewer", with the reason on request.
 * Hiding is a courtesy; the server refuses the call for the role anyway.
 */
import { useState, type ReactNode } from "react";
import { ROLE_ADDS, rolePlural, useRole, type Role } from "../_lib/me";

function withArticle(role: string): string {
  return `${/^[aeiou]/.test(role) ? "an" : "a"} ${role}`;
}

function Why({ need, role }: { need: Role; role: Role | null }) {
  return (
    <span className="role-why" data-testid="role-hint-why">
      Your role{role ? `, ${role},` : ""} lets you {ROLE_ADDS.viewer}
      {role && role !== "viewer" ? ` and ${ROLE_ADDS[role === "admin" ? "admin" : "operator"]}` : ""}. {rolePlural(need)} can also {ROLE_ADDS[need]}. An admin can change your role (Admin → Users); the
      server refuses this for your role whatever the page shows.
    </span>
  );
}

/** An inline hint in place of a control the role lacks. */
export function RoleHint({ need, verb, testid = "role-hint" }: { need: Role; verb: string; testid?: string }) {
  const { role } = useRole();
  const [open, setOpen] = useState(false);
  return (
    <span className="role-hint" data-testid={testid} data-need={need}>
      <span data-testid={`${testid}-text`}>
        {rolePlural(need)} can {verb} — you are {role ? withArticle(role) : "…"}
      </span>
      <button type="button" className="link-btn role-why-btn" aria-expanded={open} onClick={() => setOpen((o) => !o)}>
        {open ? "hide" : "why?"}
      </button>
      {open ? <Why need={need} role={role} /> : null}
    </span>
  );
}

/**
 * A whole page (or panel) a role may not use: an explanation, not a blank.
 * Children render only for `need` and up.
 */
export function RoleRequired({ need, what, children }: { need: Role; what: string; children: ReactNode }) {
  const { role, can, loading } = useRole();
  if (loading) return <div className="panel empty-state muted">Loading…</div>;
  if (can(need)) return <>{children}</>;
  return (
    <div className="panel empty-state role-required" data-testid="role-required" data-need={need}>
      <h2>
        {what} needs the {need} role — you are {role ? withArticle(role) : "not logged in"}
      </h2>
      <p>
        {rolePlural(need)} {ROLE_ADDS[need]}. Your role lets you {ROLE_ADDS.viewer}
        {role === "operator" ? ` and ${ROLE_ADDS.operator}` : ""}.
      </p>
      <p>Ask an admin to change your role if you need this. The server refuses these calls for your role, whatever this page shows.</p>
    </div>
  );
}
