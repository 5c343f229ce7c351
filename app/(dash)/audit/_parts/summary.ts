/** One line for an audit entry in the list, by action. Pure. */
import { leafText } from "../../../_components/DataView";

export type Data = Record<string, unknown>;

/** Audit data is free-form per action: a JSON object is read key by key. */
export function isRecord(v: unknown): v is Data {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export const KNOWN_ACTIONS = [
  "auth.login",
  "auth.logout",
  "auth.logout_everywhere",
  "user.",
  "user.add",
  "user.set_role",
  "user.reset_password",
  "user.disable",
  "user.enable",
  "token.create",
  "token.revoke",
  "agent_token.create",
  "agent_token.revoke",
  "alert.ack",
  "alert.resolve",
  "alert_rule.update",
  "webhook.add",
  "webhook.remove",
  "webhook.update",
  "upgrade.",
  "upgrade.unpack",
  "upgrade.install",
  "upgrade.make_permanent",
  "upgrade.rollback",
  "access.denied",
  "audit.export",
];

function changedKeys(before: unknown, after: unknown, prefix = ""): string[] {
  if (leafText(before) === leafText(after)) return [];
  if (isRecord(before) && isRecord(after)) {
    return [...new Set([...Object.keys(before), ...Object.keys(after)])].flatMap((k) => changedKeys(before[k], after[k], prefix ? `${prefix}.${k}` : k));
  }
  return [`${prefix || "value"}: ${leafText(before)} → ${leafText(after)}`];
}

function purgeText(p: unknown): string | null {
  if (!p || typeof p !== "object") return null;
  const e = Object.entries(p);
  return e.length ? e.map(([m, c]) => `${m.replace(/^Elixir\./, "")}=${leafText(c)}`).join(", ") : null;
}

export function summary(action: string, data: unknown): string {
  const d: Data = isRecord(data) ? data : {};
  if ("before" in d && "after" in d) {
    const scalar = (v: unknown) => v === null || typeof v !== "object";
    if (scalar(d.before) && scalar(d.after)) return `${leafText(d.before)} → ${leafText(d.after)}`;
    return changedKeys(d.before, d.after).join("; ") || "no change";
  }
  switch (action) {
    case "auth.login":
      return d.reason ? `refused: ${leafText(d.reason)}${d.ip ? ` from ${leafText(d.ip)}` : ""}` : d.ip ? `from ${leafText(d.ip)}` : "";
    case "user.add":
      return `role ${leafText(d.role)}`;
    case "user.reset_password":
    case "auth.logout_everywhere":
      return typeof d.sessionsEnded === "number" ? `${d.sessionsEnded} session${d.sessionsEnded === 1 ? "" : "s"} ended` : "";
    case "token.create":
      return `“${leafText(d.label)}”, role ${leafText(d.role)}${d.expiresAt ? `, expires ${leafText(d.expiresAt)}` : ""}`;
    case "agent_token.create":
      return `“${leafText(d.label)}”${d.fleet ? ", fleet" : ""}`;
    case "agent_token.revoke":
      return typeof d.disconnected === "number" ? `${d.disconnected} agent(s) disconnected` : "";
    case "alert.ack":
    case "alert.resolve":
      return leafText(d.title);
    case "webhook.add":
    case "webhook.remove":
      return leafText(d.url);
    case "webhook.update":
      return `${leafText(d.url)}: event values ${(d.after as { eventValues?: unknown } | undefined)?.eventValues ? "on" : "off"}`;
    case "access.denied":
      return `${leafText(d.procedure)} needs ${leafText(d.needed)}; was ${leafText(d.role)}`;
    case "audit.export":
      return `${leafText(d.format)}, ${leafText(d.rows)} rows`;
    default:
      break;
  }
  if (action.startsWith("upgrade.")) {
    if ("commandId" in d && ("result" in d || "error" in d)) {
      const err = d.error as { message?: string } | null | undefined;
      const pva = d.predictedVsActual as { diedUnpredicted?: unknown[]; predictedAndDied?: unknown[] } | null | undefined;
      return [err?.message ? `error: ${err.message}` : null, pva ? `${pva.predictedAndDied?.length ?? 0} predicted kills happened, ${pva.diedUnpredicted?.length ?? 0} unpredicted` : null]
        .filter(Boolean)
        .join("; ");
    }
    const purge = purgeText(d.purge);
    const kills = Array.isArray(d.predictedKills) ? d.predictedKills.length : null;
    return [
      d.fromVsn || d.toVsn ? `${leafText(d.fromVsn ?? "?")} → ${leafText(d.toVsn ?? "?")}` : null,
      purge ? `purge ${purge}` : null,
      kills !== null ? `${kills} predicted kill${kills === 1 ? "" : "s"}` : null,
    ]
      .filter(Boolean)
      .join(" · ");
  }
  const text = leafText(d);
  return text === "{}" ? "" : text.length > 140 ? `${text.slice(0, 140)}…` : text;
}
