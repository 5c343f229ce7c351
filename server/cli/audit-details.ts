/** The DETAILS and OUTCOME columns of `beamdeck audit`: one line an operator reads without the JSON. */
import { readColumn } from "../storage/json-column";
import { upgradeIntentData, upgradeOutcomeData } from "../upgrades/stored";

interface Entry {
  id: string;
  action: string;
  intentId: string | null;
  outcome: string | null;
  pendingOutcome?: boolean;
  data?: unknown;
}

const MAX_DETAILS = 120;

function cap(text: string): string {
  return text.length > MAX_DETAILS ? `${text.slice(0, MAX_DETAILS - 1)}…` : text;
}

function upgradeDetails(e: Entry, data: unknown): string {
  if (e.outcome === null) {
    const d = readColumn(`audit ${e.id}`, upgradeIntentData, data, {});
    const parts = [
      `${d.step ?? e.action.slice(8)} ${d.fromVsn ?? "?"}→${d.toVsn ?? "?"}`,
      `kills ${d.predictedKills?.length ?? 0}`,
      `${d.acceptedOntoOldCode?.length ?? 0} left on old code`,
      d.findingsAccepted?.length ? `findings accepted: ${d.findingsAccepted.map((f) => f.id).join(", ")}` : "no findings",
      d.gate?.used ? `gate ${d.gate.used}` : null,
    ];
    return parts.filter(Boolean).join("; ");
  }
  const d = readColumn(`audit ${e.id}`, upgradeOutcomeData, data, {});
  if (d.error) return `${d.error.code ?? "error"}: ${d.error.message ?? ""}`;
  const c = d.predictedVsActual;
  if (!c) return "done";
  const died = (c.predictedAndDied?.length ?? 0) + (c.diedUnpredicted?.length ?? 0);
  return `died ${died} (predicted ${(c.predictedAndDied?.length ?? 0) + (c.predictedButAlive?.length ?? 0)}${c.diedUnpredicted?.length ? `, ${c.diedUnpredicted.length} unpredicted` : ""})`;
}

/** What an entry says, in one line. */
export function auditDetails(e: Entry): string {
  const data = e.data && typeof e.data === "object" ? e.data : null;
  if (!data) return "";
  if (e.action.startsWith("upgrade.")) return cap(upgradeDetails(e, data));
  const parts = Object.entries(data)
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== "object")
    .map(([k, v]) => `${k}=${String(v)}`);
  return cap(parts.join(" "));
}

/** An outcome, or for an intent the outcome that answered it on this page ("intent → ok #12"). */
export function outcomeText(e: Entry, answers: Map<string, Entry>): string {
  if (e.outcome) return e.intentId ? `${e.outcome} (intent #${e.intentId})` : e.outcome;
  const answer = answers.get(e.id);
  if (answer) return `intent → ${answer.outcome ?? "?"} #${answer.id}`;
  return e.pendingOutcome ? "NO OUTCOME" : "";
}
