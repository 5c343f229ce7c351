/** Shapes of what the server returns, inferred from the router (types only). */
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import type { AppRouter } from "../../server/routers/_app";

export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type RouterInputs = inferRouterInputs<AppRouter>;

export type NodeInfo = RouterOutputs["nodes"]["get"];
export type ProcessRow = RouterOutputs["procs"]["window"]["rows"][number];
export type SortKey = NonNullable<RouterInputs["procs"]["window"]["sort"]>;
export type TreeApp = RouterOutputs["procs"]["tree"]["apps"][number];
export type TreeNode = NonNullable<TreeApp["root"]>;
export type LinkedProcess = TreeNode["linked"][number];
export type MailboxSample = RouterOutputs["procs"]["history"][number];

/** What `procs.detail` returns (docs/protocol.md, ProcessDetail); the router types it loosely. */
export interface ProcessDetail {
  pid: string;
  alive: boolean;
  record?: ProcessRow | null;
  stacktrace?: { mfa: string; file?: string | null; line?: number | null }[];
  stackModules?: string[];
  links?: string[];
  monitors?: { kind: string; pid?: string | null; name?: string | null; node?: string | null }[];
  monitoredBy?: string[];
  trapExit?: boolean;
  priority?: string;
  heapSize?: number;
  stackSize?: number;
  totalHeapSize?: number;
  messageQueueLen?: number;
  garbageCollection?: Record<string, unknown>;
  dictionary?: { key: string; value: string }[];
  dictionaryTruncated?: boolean;
  state?: null | { text: string; truncated: boolean } | { error: string };
  /** Absent from agents without the `message_preview` capability. */
  mailbox?: MailboxPreview;
}

/** The first messages (only where the agent's get_state allows) and leak hints (always: counts and shapes, no values). */
export interface MailboxPreview {
  status: "empty" | "shown" | "hidden" | "too_many" | "gone";
  messages: { text: string; truncated: boolean }[];
  hints: { id: string; count: number; message: string; fix: string }[];
  /** Messages at or above this many are not read (observer_cli's guard). */
  limit: number;
}
