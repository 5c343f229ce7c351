"use client";
/**
 * Who may run upgrade steps, and the typed confirmation in front of every
 * step that changes the node. Hiding a button is a courtesy: the server
 * refuses a viewer's step (FORBIDDEN) whatever the page shows.
 */
import { useQuery } from "@tanstack/react-query";
import { useId, type ReactNode } from "react";
import { useTRPC } from "../../../../../_lib/trpc";

/** True for operators and admins, false for viewers, null while loading. */
export function useCanOperate(): boolean | null {
  const trpc = useTRPC();
  const me = useQuery(trpc.auth.me.queryOptions(undefined, { staleTime: 60_000 }));
  if (!me.data) return null;
  return me.data.role === "operator" || me.data.role === "admin";
}

/** Said in place of the buttons a viewer cannot use. */
export function ViewerNote({ children }: { children?: ReactNode }) {
  return (
    <div className="up-viewer-note" data-testid="viewer-note">
      <strong>Operators and admins can run upgrade steps — you are a viewer.</strong>{" "}
      {children ?? "You see the same plan, preview and progress; unpack, install, make permanent and roll back are theirs to run."}
    </div>
  );
}

/** Controls for operators; for viewers `fallback` (default: the viewer note); nothing while the role loads. */
export function OperatorOnly({ children, fallback }: { children: ReactNode; fallback?: ReactNode }) {
  const can = useCanOperate();
  if (can === null) return null;
  if (can) return <>{children}</>;
  return fallback === undefined ? <ViewerNote /> : <>{fallback}</>;
}

/** The node's name, typed by the operator: the guard in front of a step. */
export function ConfirmNode({ node, value, onChange, testid = "confirm-node" }: { node: string; value: string; onChange: (v: string) => void; testid?: string }) {
  const id = useId();
  const ok = value === node;
  return (
    <div className="up-confirm">
      <label htmlFor={id}>
        Type the node name <code className="up-confirm-name">{node}</code> to confirm
      </label>
      <input
        id={id}
        className={`input up-confirm-input${ok ? " ok" : ""}`}
        data-testid={testid}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        autoComplete="off"
        spellCheck={false}
        placeholder={node}
      />
    </div>
  );
}
