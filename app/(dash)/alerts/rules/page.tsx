"use client";
/**
 * Alert rules: each with its defaults beside the value in force. Admins
 * edit thresholds and switch rules on or off (audited with before/after);
 * everyone else reads them.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { type ReactNode, useEffect, useState } from "react";
import { leafText } from "../../../_components/DataView";
import { RoleHint } from "../../../_components/RoleHint";
import { dateTime } from "../../../_lib/format";
import { useRole } from "../../../_lib/me";
import { errorMessage, useTRPC } from "../../../_lib/trpc";
import type { RouterOutputs } from "../../../_lib/types";
import { toMs } from "../../../_lib/when";
import { AlertsTabs } from "../_parts/AlertsTabs";

type Rule = RouterOutputs["alerts"]["rules"][number];
type Params = Record<string, unknown>;

/** What each parameter means, for the form. */
const PARAM_HELP: Record<string, { label: string; unit?: string; help: string }> = {
  reasons: { label: "Reasons that page", help: "exit reasons as atom text, comma-separated (killed is what a brutal purge gives)" },
  anyAbnormal: { label: "Any abnormal reason", help: "also page on every reason other than normal, shutdown and {shutdown, _}" },
  threshold: { label: "Threshold", unit: "messages", help: "a process's message queue above this…" },
  forSeconds: { label: "For", unit: "s", help: "…for longer than this" },
  windowSeconds: { label: "Not drained for", unit: "s", help: "the mailbox has not come back down for this long…" },
  minGrowth: { label: "Growth", unit: "messages", help: "…and grew by at least this many messages in that time" },
};

const RULE_HELP: Record<string, string> = {
  child_terminated: "A supervisor reports child_terminated with a paging reason, and no upgrade an operator approved predicted that kill.",
  max_restart_intensity: "A supervisor gave up: too many restarts in its period (reached_max_restart_intensity). Always pages when enabled.",
  mailbox: "One process's mailbox stays above the threshold for the whole time; resolves by itself when it drains.",
  mailbox_leak: "A mailbox that keeps growing, however slowly, without ever draining — e.g. replies of Task.async calls nobody awaits ({Ref, Result} and :DOWN). Resolves when it drains.",
  node_down: "A node's agent stays disconnected for longer than this; resolves by itself when it reconnects.",
  event_gap: "Events from a node are missing from its sequence without the agent saying it dropped them, or the sequence went backwards: someone may be suppressing or forging reports.",
  old_code:
    "Processes stay on a module's old code (after a soft purge, or a load they did not follow) for longer than this: the next load of that module kills them or is blocked. Resolves when none are left.",
  upgrade_unverified:
    "An install, rollback or make_permanent succeeded, but the agent's check right after it found changed modules still on their old code (an appup that misses them), new permanent children that release_handler did not start, or a process the upgrade could not reach (a not_suspended finding) dead. Pages once per node and release.",
  rollout_halted:
    "A rollout stopped touching nodes: a node failed its health gate during the soak (an unpredicted death, a crash or supervisor report, a mailbox or leak alert, a lost connection, modules not on the new code) or a step failed. The alert says which node and why; resume or abort the rollout.",
  version_drift:
    "The connected nodes of one group (BEAMDECK_GROUP, by default the release name) run different releases for longer than this — a rollout left half done, or a node restarted on an old release. Resolves when they run one release again.",
};

function ParamInput({ name, value, def, disabled, onChange }: { name: string; value: unknown; def: unknown; disabled: boolean; onChange: (v: unknown) => void }) {
  const h = PARAM_HELP[name] ?? { label: name, help: "" };
  const testid = `rule-param-${name}`;
  let input: ReactNode;
  if (typeof def === "boolean") {
    input = <input type="checkbox" checked={Boolean(value)} disabled={disabled} onChange={(e) => onChange(e.target.checked)} data-testid={testid} />;
  } else if (typeof def === "number") {
    input = (
      <input
        type="number"
        className="ctl num-input"
        min={0}
        value={typeof value === "number" && !Number.isNaN(value) ? value : ""}
        disabled={disabled}
        onChange={(e) => onChange(e.target.value === "" ? Number.NaN : Number(e.target.value))}
        data-testid={testid}
      />
    );
  } else if (Array.isArray(def)) {
    input = (
      <input
        className="ctl"
        value={Array.isArray(value) ? value.join(", ") : String(value ?? "")}
        disabled={disabled}
        onChange={(e) =>
          onChange(
            e.target.value
              .split(",")
              .map((x) => x.trim())
              .filter(Boolean),
          )
        }
        data-testid={testid}
      />
    );
  } else {
    input = <input className="ctl" value={String(value ?? "")} disabled={disabled} onChange={(e) => onChange(e.target.value)} data-testid={testid} />;
  }
  const changed = leafText(value) !== leafText(def);
  return (
    <div className="param">
      {/* biome-ignore lint/a11y/noLabelWithoutControl: the control is {input}, chosen above by the default's type */}
      <label className="param-label">
        <span>{h.label}</span>
        {input}
        {h.unit ? <span className="muted">{h.unit}</span> : null}
      </label>
      <span className={changed ? "param-default changed" : "param-default"} data-testid={`${testid}-default`}>
        default {Array.isArray(def) ? def.join(", ") || "(none)" : String(def)}
        {changed ? " · changed" : ""}
      </span>
      {h.help ? <span className="param-help muted">{h.help}</span> : null}
    </div>
  );
}

function RuleCard({ rule, canEdit }: { rule: Rule; canEdit: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [enabled, setEnabled] = useState(rule.enabled);
  const [params, setParams] = useState<Params>(rule.params);
  // A save (here or elsewhere) refreshes the form.
  useEffect(() => {
    setEnabled(rule.enabled);
    setParams(rule.params);
  }, [rule]);
  const save = useMutation(trpc.alerts.updateRule.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.alerts.rules.queryKey() }) }));
  const defaults: Params = rule.defaults;
  const dirty = enabled !== rule.enabled || leafText(params) !== leafText(rule.params);
  const invalid = Object.values(params).some((v) => typeof v === "number" && Number.isNaN(v));
  const updated = toMs(rule.updatedAt);
  return (
    <div className={`panel rule ${enabled ? "" : "rule-off"}`} data-testid="rule" data-kind={rule.kind} data-enabled={String(rule.enabled)}>
      <div className="panel-head">
        <h2>{rule.title}</h2>
        <span className={rule.enabled ? "status status-up" : "status status-down"}>{rule.enabled ? "enabled" : "disabled"}</span>
        <span className="spacer" />
        <span className="panel-meta" data-testid="rule-updated">
          {updated ? `changed ${dateTime(updated)} by ${rule.updatedBy ?? "?"}` : "defaults, never changed"}
        </span>
      </div>
      <div className="rule-body">
        <p className="muted rule-help">{RULE_HELP[rule.kind]}</p>
        <label className="check">
          <input type="checkbox" checked={enabled} disabled={!canEdit} onChange={(e) => setEnabled(e.target.checked)} data-testid="rule-enabled" />
          enabled
        </label>
        {Object.keys(defaults).length ? (
          <div className="params">
            {Object.keys(defaults).map((k) => (
              <ParamInput key={k} name={k} value={params[k]} def={defaults[k]} disabled={!canEdit} onChange={(v) => setParams((p) => ({ ...p, [k]: v }))} />
            ))}
          </div>
        ) : (
          <p className="muted">No thresholds: on or off.</p>
        )}
      </div>
      {canEdit ? (
        <div className="panel-foot rule-foot">
          <button type="button" className="btn btn-primary" disabled={!dirty || invalid || save.isPending} onClick={() => save.mutate({ kind: rule.kind, enabled, params })} data-testid="rule-save">
            {save.isPending ? "Saving…" : "Save"}
          </button>
          <button type="button" className="btn" disabled={!dirty} onClick={() => (setEnabled(rule.enabled), setParams(rule.params))}>
            Discard
          </button>
          <button type="button" className="btn btn-ghost" disabled={leafText(params) === leafText(defaults)} onClick={() => setParams(defaults)} data-testid="rule-defaults">
            Use defaults
          </button>
          {save.error ? <span className="error-inline">{errorMessage(save.error)}</span> : null}
          {save.isSuccess && !dirty ? (
            <span className="ok-inline" data-testid="rule-saved">
              saved (audited)
            </span>
          ) : null}
        </div>
      ) : null}
    </div>
  );
}

export default function RulesPage() {
  const trpc = useTRPC();
  const { can, loading } = useRole();
  const rules = useQuery(trpc.alerts.rules.queryOptions());
  useEffect(() => {
    document.title = "Alert rules · beamdeck";
  }, []);
  return (
    <div className="page">
      <div className="page-head">
        <h1>Alerts</h1>
        <span className="page-meta">rules are evaluated on the live stream of events and samples</span>
      </div>
      <AlertsTabs />
      {!loading && !can("admin") ? (
        <div className="notice">
          <RoleHint need="admin" verb="change alert rules" />
        </div>
      ) : null}
      {rules.error ? <div className="alert alert-error">{errorMessage(rules.error)}</div> : null}
      <div className="rules" data-testid="rules">
        {(rules.data ?? []).map((r) => (
          <RuleCard key={r.kind} rule={r} canEdit={can("admin")} />
        ))}
      </div>
    </div>
  );
}
