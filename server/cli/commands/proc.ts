/** `beamdeck proc <node> <pid>`: one process in detail, as docs/cli.md lists it. */
import type { Env } from "../../storage/database-url";
import type { MailboxPreview, ProcessDetail } from "../../../app/_lib/types";
import { check, parse, pidArg } from "../args";
import { call } from "../client";
import { bytes, json } from "../format";
import { moduleName, mfaName } from "../names";
import { stateHiddenWhy, valuesHiddenWhy } from "../../../app/_lib/values-why";

/** Why a preview shows no messages, in words. */
const PREVIEW_WHY: Record<Exclude<MailboxPreview["status"], "hidden">, string> = {
  empty: "empty",
  shown: "",
  too_many: "messages not read: the mailbox is at or above the preview limit",
  gone: "the process exited",
};

function mailboxLines(m: MailboxPreview | undefined, hiddenBelow: string | null): string[] {
  if (!m) return ["messages:          - (this agent has no message preview)"];
  const why = m.status === "hidden" ? `messages not shown: ${valuesHiddenWhy(hiddenBelow)}` : m.status === "too_many" ? `${PREVIEW_WHY.too_many} (${m.limit})` : PREVIEW_WHY[m.status];
  const out = [`messages:          ${m.status === "shown" ? `first ${m.messages.length}` : why}`];
  for (const msg of m.messages) out.push(`  ${msg.text}${msg.truncated ? " …" : ""}`);
  for (const h of m.hints) out.push(`hint [${h.id}]:      ${h.message}`, `  fix: ${h.fix}`);
  return out;
}

function text(d: ProcessDetail): string[] {
  const r = d.record;
  const monitors = (d.monitors ?? []).map((m) => m.pid ?? (m.name ? `${moduleName(m.name)}${m.node ? `@${m.node}` : ""}` : m.kind));
  const hidden = valuesHiddenWhy(d.valuesHiddenBelow);
  const dict = (d.dictionary ?? []).map((e) => `  ${e.key} => ${e.value ?? `(value hidden: ${hidden})`}`);
  const state = d.state && "text" in d.state ? d.state.text : d.state && "error" in d.state ? `(${stateHiddenWhy(d.state.error, d.valuesHiddenBelow)})` : "-";
  return [
    `pid:               ${d.pid}`,
    `name:              ${r?.name ? moduleName(r.name) : "-"}`,
    `label:             ${r?.label ? moduleName(r.label) : "-"}`,
    `initial call:      ${r?.initialCall ? mfaName(r.initialCall) : "-"}`,
    `current function:  ${r?.currentFunction ? mfaName(r.currentFunction) : "-"}`,
    `mailbox:           ${d.messageQueueLen ?? r?.mailbox ?? "-"}`,
    `memory:            ${bytes(r?.memory)}`,
    `reductions:        ${r?.reductions ?? "-"}`,
    `status:            ${r?.status ?? "-"}`,
    `links:             ${(d.links ?? []).join(" ") || "-"}`,
    `monitors:          ${monitors.join(" ") || "-"}`,
    `monitored by:      ${(d.monitoredBy ?? []).join(" ") || "-"}`,
    `stack modules:     ${(d.stackModules ?? []).map(moduleName).join(" ") || "-"}`,
    "stacktrace:",
    ...(d.stacktrace ?? []).map((f) => `  ${mfaName(f.mfa)}${f.file ? ` (${f.file}:${f.line ?? "?"})` : ""}`),
    ...mailboxLines(d.mailbox, d.valuesHiddenBelow),
    `dictionary:        ${dict.length ? "" : "-"}`.trimEnd(),
    ...dict,
    ...(d.dictionaryTruncated ? ["  … more entries not shown"] : []),
    `state:             ${state}`,
  ];
}

export async function proc(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" } }, ["node", "pid"]);
  const pid = check(pidArg, positionals[1], "pid");
  const d = await call(env, (api) => api.procs.detail.query({ node: positionals[0], pid }));
  if (values.json) console.log(json({ ...(d.record ?? {}), ...d }));
  else console.log(text(d).join("\n"));
  return 0;
}
