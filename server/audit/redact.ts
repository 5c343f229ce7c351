/**
 * Secrets never enter audit data in clear (issue 10, item 13). A webhook URL
 * (a Slack URL is itself the credential) is kept as its origin and a
 * fingerprint; entries written before that are shown the same way. The rows
 * themselves are not rewritten (that would break the chain silently).
 */
import crypto from "node:crypto";

export interface UrlFingerprint {
  origin: string;
  fingerprint: string;
}

/** A URL's origin and `sha256:` fingerprint (first 16 hex digits), never its path or query. */
export function urlForAudit(url: string): UrlFingerprint {
  let origin = "(not a URL)";
  try {
    origin = new URL(url).origin;
  } catch {
    /* fingerprint only */
  }
  return { origin, fingerprint: `sha256:${crypto.createHash("sha256").update(url).digest("hex").slice(0, 16)}` };
}

/** Entry data as shown: webhook URLs in entries from before item 13 are replaced by their fingerprint. */
export function redactAuditData(action: string, data: unknown): unknown {
  if (!action.startsWith("webhook.") || typeof data !== "object" || data === null || Array.isArray(data)) return data;
  return "url" in data && typeof data.url === "string" ? { ...data, url: urlForAudit(data.url), redacted: ["url"] } : data;
}
