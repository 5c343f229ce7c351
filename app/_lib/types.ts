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
}
