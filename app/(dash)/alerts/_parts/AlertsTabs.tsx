"use client";
/** The alerts area: the alerts themselves, their rules, where they are sent. */
import Link from "next/link";
import { usePathname } from "next/navigation";

const TABS = [
  { href: "/alerts", label: "Alerts" },
  { href: "/alerts/rules", label: "Rules" },
  { href: "/alerts/webhooks", label: "Webhooks" },
];

export function AlertsTabs() {
  const path = usePathname() ?? "/alerts";
  return (
    <nav className="tabs page-tabs" aria-label="Alerts">
      {TABS.map((t) => (
        <Link key={t.href} href={t.href} className={path === t.href ? "tab active" : "tab"} data-testid={`alerts-tab-${t.label.toLowerCase()}`}>
          {t.label}
        </Link>
      ))}
    </nav>
  );
}
