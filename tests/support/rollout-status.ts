/**
 * `beamdeck rollout status <id> --json` as the rollout tests read it: the
 * fields they check (docs/cli.md, "Fleets"), read through the real CLI.
 */
import type { TestServer } from "./server";

export interface RolloutNodeJson {
  node: string;
  step: string;
  fromVsn: string | null;
  predicted: Record<string, string[]> | null;
  actual: Record<string, { died: string[]; comparison: { diedUnpredicted: string[]; predictedAndDied: string[] } | null }> | null;
  gate: { soakedMs: number; unexpectedReports: number; connected: boolean } | null;
  error: string | null;
  soakStartedAt: string | null;
}
export interface RolloutJson {
  id: string;
  status: string;
  haltReason: string | null;
  nodes: RolloutNodeJson[];
}

/** The rollout as the CLI prints it; exit 8 (halted) is a status, not a failure. */
export async function rolloutStatus(server: TestServer, id: string): Promise<RolloutJson> {
  const r = await server.cli(["rollout", "status", id, "--json"]);
  if (r.code !== 0 && r.code !== 8) throw new Error(`rollout status: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as RolloutJson;
}
