"use client";
/** A detail panel on the right (the node page's drawer look), closed by × or Escape. */
import { useEffect, type ReactNode } from "react";

export function Drawer({
  title,
  onClose,
  testid,
  closeTestid = `${testid}-close`,
  label,
  data,
  actions,
  children,
}: {
  title: ReactNode;
  onClose: () => void;
  testid: string;
  closeTestid?: string;
  /** The accessible name when the title is not plain text. */
  label?: string;
  /** data-* attributes of the drawer (what tests and links key on). */
  data?: Record<`data-${string}`, string>;
  actions?: ReactNode;
  children: ReactNode;
}) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  return (
    <aside className="drawer" data-testid={testid} aria-label={label} {...data}>
      <div className="drawer-head">
        <div className="drawer-title">{title}</div>
        <div className="drawer-actions">
          {actions}
          <button type="button" className="btn btn-ghost close" onClick={onClose} aria-label="Close" data-testid={closeTestid}>
            ×
          </button>
        </div>
      </div>
      <div className="drawer-body">{children}</div>
    </aside>
  );
}

export function Section({ title, children, testid }: { title: ReactNode; children: ReactNode; testid?: string }) {
  return (
    <section className="drawer-section" data-testid={testid}>
      <h3>{title}</h3>
      {children}
    </section>
  );
}
