/**
 * Find processes by their code: the agent's `find_processes` request
 * (docs/protocol.md), which matches the modules on each stack and the
 * callback module within a time budget and says how far it got.
 */
import type { z } from "zod";
import type { AgentRegistry } from "./registry";
import type { findProcessesReply } from "./replies";

export type StackSearch = z.infer<typeof findProcessesReply>;

/** The agent's walk may take this long; the request waits a little more. A result is reused for `reuseMs` (a table scrolled through asks once). */
export const STACK_SEARCH = { budgetMs: 200, timeoutMs: 3000, reuseMs: 5000, keptResults: 64 } as const;

type Recent = Map<string, { at: number; result: Promise<StackSearch | null> }>;
/** Per registry (one per server), so nothing is shared between servers in one process. */
const recentBy = new WeakMap<AgentRegistry, Recent>();

/**
 * Ask the node's agent for processes running `needle`'s code, or null when
 * the agent cannot (no capability, not connected, a bad or late reply): the
 * table's own filter still answers then.
 */
export function findByModule(registry: AgentRegistry, node: string, capabilities: readonly string[], needle: string, now = Date.now()): Promise<StackSearch | null> {
  if (!capabilities.includes("find_processes")) return Promise.resolve(null);
  let recent = recentBy.get(registry);
  if (!recent) {
    recent = new Map();
    recentBy.set(registry, recent);
  }
  const key = `${node}\u0000${needle.toLowerCase()}`;
  const hit = recent.get(key);
  if (hit && now - hit.at < STACK_SEARCH.reuseMs) return hit.result;
  const result = ask(registry, node, needle);
  recent.delete(key);
  recent.set(key, { at: now, result });
  // Bounded: the oldest results go first.
  for (const k of recent.keys()) {
    if (recent.size <= STACK_SEARCH.keptResults) break;
    recent.delete(k);
  }
  return result;
}

async function ask(registry: AgentRegistry, node: string, needle: string): Promise<StackSearch | null> {
  try {
    // Parsed by its schema in the registry (replies.ts); a bad reply throws.
    return await registry.request(node, "find_processes", { module: needle, budgetMs: STACK_SEARCH.budgetMs, limit: 1000 }, STACK_SEARCH.timeoutMs);
  } catch {
    return null;
  }
}
