/** Who is calling: a logged-in user or an API token, with the role that applies. */
import type { Role } from "./roles";

export type Principal =
  | { kind: "user"; userId: string; username: string; role: Role; sessionId: string }
  | { kind: "token"; tokenId: string; label: string; role: Role; userId: string | null; username: string | null };

/** The actor string written to the audit log. */
export function actorOf(p: Principal | null): string {
  if (!p) return "anonymous";
  return p.kind === "user" ? `user:${p.username}` : `token:${p.tokenId}(${p.label})`;
}
