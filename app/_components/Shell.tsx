"use client";
/** The frame around every logged-in page: brand, navigation, who is logged in. */
import { useMutation, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname } from "next/navigation";
import type { ReactNode } from "react";
import { errorMessage, useTRPC } from "../_lib/trpc";

/**
 * Top-level pages. Later pages (Events, Alerts, Upgrades, Audit, Admin) are
 * added here as they are built; each gets its own folder under app/(dash)/.
 */
const NAV: { href: string; label: string; match: (path: string) => boolean }[] = [
  { href: "/", label: "Nodes", match: (p) => p === "/" || p.startsWith("/nodes/") },
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
      <span className={`role role-${me.data.role}`} data-testid="user-role">
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
          {NAV.map((n) => (
            <Link key={n.href} href={n.href} className={n.match(path) ? "nav-link active" : "nav-link"}>
              {n.label}
            </Link>
          ))}
        </nav>
        <UserMenu />
      </header>
      <main className="main">{children}</main>
    </div>
  );
}
