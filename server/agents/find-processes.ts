/**
 * Find processes by their code: the agent's `find_processes` request
 * (docs/protocol.md), which matches the modules on each stack and the
 * callback module within a time budget and says how far it got.
 */
import { z } from "zod";
import type { AgentRegistry } from "./registry";

/** The reply of `find_processes`; bounded as the agent bounds it. */
export const findProcessesReply = z.object({
  matches: z.array(z.object({ pid: z.string().max(64), modules: z.array(z.string().max(1024)).max(64) })).max(1000),
  scanned: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  partial: z.boolean(),
});
export type StackSearch = z.infer<typeof findProcessesReply>;

/** The agent's walk may take this long; the request waits a little more. */
export const STACK_SEARCH = { budgetMs: 200, timeoutMs: 3000 } as const;

/**
 * Ask the node's agent for processes running `needle`'s code, or null when
 * the agent cannot (no capability, not connected, a bad or late reply): the
 * table's own filter still answers then.
 */
export async function findByModule(registry: AgentRegistry, node: string, capabilities: readonly string[], needle: string): Promise<StackSearch | null> {
  if (!capabilities.includes("find_processes")) return null;
  try {
    const reply = await registry.request(node, "find_processes", { module: needle, budgetMs: STACK_SEARCH.budgetMs, limit: 1000 }, STACK_SEARCH.timeoutMs);
    const parsed = findProcessesReply.safeParse(reply);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
