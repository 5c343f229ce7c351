/** Who is calling: a logged-in user or an API token, with the role that applies. */
import { z } from "zod";
import { roleSchema } from "./roles";

/** Also the shape one instance hands another when it forwards a call (gateway/internal-call.ts). */
export const principalSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("user"), userId: z.string().max(100), username: z.string().max(255), role: roleSchema, sessionId: z.string().max(100) }),
  z.object({
    kind: z.literal("token"),
    tokenId: z.string().max(100),
    label: z.string().max(255),
    role: roleSchema,
    userId: z.string().max(100).nullable(),
    username: z.string().max(255).nullable(),
  }),
]);
export type Principal = z.infer<typeof principalSchema>;

/** The actor string written to the audit log. */
export function actorOf(p: Principal | null): string {
  if (!p) return "anonymous";
  return p.kind === "user" ? `user:${p.username}` : `token:${p.tokenId}(${p.label})`;
}
