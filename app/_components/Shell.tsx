"use client";
/** The frame around every logged-in page: brand, navigation, who is logged in. */
import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname } from "next/navigation";
import type { ReactNode } from "react";
import { roleAtLeast, type Role } from "../_lib/me";
import { errorMessage, useTRPC } from "../_lib/trpc";
import { AlertsBadge } from "./AlertsBadge";
import "./ops.css";

/**
 * Top-level pages, each in its own folder under app/(dash)/. A link the
 * role cannot use is not shown (the page itself still explains, and the
 * server refuses anyway).
 */
const NAV: { href: string; label: string; match: (path: string) => boolean; role?: Role; badge?: () => ReactNode }[] = [
  { href: "/", label: "Nodes", match: (p) => p === "/" || p.startsWith("/nodes/") },
  { href: "/groups", label: "Groups", match: (p) => p.startsWith("/groups") },
  { href: "/rollouts", label: "Rollouts", match: (p) => p.startsWith("/rollouts") },
  { href: "/events", label: "Events", match: (p) => p.startsWith("/events") },
  { href: "/alerts", label: "Alerts", match: (p) => p.startsWith("/alerts"), badge: () => <AlertsBadge /> },
  { href: "/audit", label: "Audit", match: (p) => p.startsWith("/audit") },
  { href: "/admin", label: "Admin", match: (p) => p.startsWith("/admin"), role: "admin" },
];

function UserMenu() {
  const trpc = useTRPC();
  const me = useQuery(trpc.auth.me.queryOptions(undefined, { staleTime: 60_000 }));
  const toLogin = () => window.location.assign("/login");
  const logout = useMutation(trpc.auth.logout.mutationOptions({ onSettled: toLogin }));
  const everywhere = useMutation(trpc.auth.logoutEverywhere.mutationOptions({ onSuccess: toLogin }));
  if (!me.data) return <div className="user" />;
  return (
    <div className="user" data-testid="user-menu">
      <span className="user-name" data-testid="user-name">
        {me.data.name}
      </span>
      <span className={`role role-${me.data.role}`} data-testid="user-role" title={`${me.data.role}: may ${me.data.can}`}>
        {me.data.role}
      </span>
      <button type="button" className="btn btn-ghost" data-testid="logout" disabled={logout.isPending} onClick={() => logout.mutate()}>
        Log out
      </button>
      <button
        type="button"
        className="btn btn-ghost"
        data-testid="logout-everywhere"
        disabled={everywhere.isPending}
        title="End every session of this user, in every browser"
        onClick={() => {
          if (window.confirm("End every session of this user, in every browser?")) everywhere.mutate();
        }}
      >
        Log out everywhere
      </button>
      {everywhere.error ? <span className="error-inline">{errorMessage(everywhere.error)}</span> : null}
    </div>
  );
}

export function Shell({ children }: { children: ReactNode }) {
  const path = usePathname() ?? "/";
  const trpc = useTRPC();
  const me = useQuery(trpc.auth.me.queryOptions(undefined, { staleTime: 60_000 }));
  const role = me.data?.role ?? null;
  return (
    <div className="app">
      <header className="topbar">
        <Link href="/" className="brand">
          <span className="brand-mark" aria-hidden="true">
            ◆
          </span>
          beamdeck
        </Link>
        <nav className="nav" aria-label="Main">
          {NAV.filter((n) => !n.role || roleAtLeast(role, n.role)).map((n) => (
            <Link key={n.href} href={n.href} className={n.match(path) ? "nav-link active" : "nav-link"} data-testid={`nav-${n.label.toLowerCase()}`}>
              {n.label}
              {n.badge ? n.badge() : null}
            </Link>
          ))}
        </nav>
        <UserMenu />
      </header>
      <main className="main">{children}</main>
    </div>
  );
}
