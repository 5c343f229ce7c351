/** The audit hash chain: each entry's hash covers its content and the previous hash. */
import crypto from "node:crypto";
import { canonicalJson } from "./canonical";

export const GENESIS_HASH = "0".repeat(64);

export interface AuditContent {
  at: Date;
  actor: string;
  action: string;
  node: string | null;
  target: string | null;
  intentId: bigint | null;
  outcome: string | null;
  data: unknown;
}

export function entryHash(prevHash: string, content: AuditContent): string {
  return crypto.createHash("sha256").update(prevHash).update("\n").update(canonicalJson(content)).digest("hex");
}
