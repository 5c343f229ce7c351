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

/** What `procs.detail` returns: the agent's ProcessDetail (server/agents/replies.ts). */
export type ProcessDetail = RouterOutputs["procs"]["detail"];

/** The first messages (only where the agent's get_state allows) and leak hints (always: counts and shapes, no values). */
export type MailboxPreview = NonNullable<ProcessDetail["mailbox"]>;

/** One rollout as its page shows it (`rollouts.get`, also pushed by `rollouts.onChange`). */
export type Rollout = RouterOutputs["rollouts"]["get"];
