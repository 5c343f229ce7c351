"use client";
/**
 * A button for a step that cannot be undone (revoke, disable, remove): it
 * asks first, saying what follows, and runs the step only on yes. Disabled
 * while the step is under way, so a double click sends it once.
 */
import type { ReactNode } from "react";

export function ConfirmButton({
  question,
  onConfirm,
  pending,
  testid,
  className = "btn",
  children,
}: {
  /** What is asked; null runs the step without asking (undoing a disable, say). */
  question: string | null;
  onConfirm: () => void;
  pending: boolean;
  testid: string;
  className?: string;
  children: ReactNode;
}) {
  return (
    <button
      type="button"
      className={className}
      data-testid={testid}
      disabled={pending}
      onClick={() => {
        if (question === null || window.confirm(question)) onConfirm();
      }}
    >
      {children}
    </button>
  );
}
