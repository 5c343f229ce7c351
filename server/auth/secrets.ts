/**
 * Random credentials: API tokens, agent tokens, session cookies.
 *
 * Tokens read `bd<kind>_<id>_<secret>`: the id is a short public prefix used
 * to find the row, the row stores SHA-256 of the whole token. Tokens are 256
 * random bits, so a fast hash is enough (decisions.md); passwords use argon2id.
 */
import crypto from "node:crypto";

export type TokenKind = "api" | "agent";
const PREFIX: Record<TokenKind, string> = { api: "bdapi", agent: "bdagt" };

export function sha256(value: string): string {
  return crypto.createHash("sha256").update(value).digest("hex");
}

function randomId(): string {
  // 10 chars of base32-ish alphabet: readable in listings, collision-safe here.
  const alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
  const bytes = crypto.randomBytes(10);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

export interface NewToken {
  id: string;
  token: string;
  hash: string;
}

export function newToken(kind: TokenKind): NewToken {
  const id = randomId();
  const token = `${PREFIX[kind]}_${id}_${crypto.randomBytes(32).toString("base64url")}`;
  return { id, token, hash: sha256(token) };
}

/** The id inside a token of the given kind, or null if it is not one. */
export function tokenId(kind: TokenKind, token: string): string | null {
  const m = new RegExp(`^${PREFIX[kind]}_([a-z2-9]{10})_[A-Za-z0-9_-]{43}$`).exec(token.trim());
  return m ? m[1] : null;
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches(token: string, storedHash: string): boolean {
  const a = Buffer.from(sha256(token.trim()), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function newSessionSecret(): { cookie: string; id: string } {
  const cookie = crypto.randomBytes(32).toString("base64url");
  return { cookie, id: sha256(cookie) };
}

export function newPassword(): string {
  return crypto.randomBytes(15).toString("base64url");
}
