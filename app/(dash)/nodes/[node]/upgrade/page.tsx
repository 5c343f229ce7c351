"use client";
/**
 * A node's hot upgrades — the reason beamdeck exists (issue 4; the forum
 * thread in shared/seed-thread.md). From top to bottom:
 *
 * 1. the releases: running, permanent, pending (Unpack for packages);
 * 2. for the chosen target: lint findings, brutal/soft per module, the
 *    appup and relup, the impact preview (keyed on the choices, so it is
 *    recomputed as they change) and the guarded Install;
 * 3. once installed and not yet permanent: the exact processes on old code
 *    (every second), and make permanent or roll back, each stating its kills;
 * 4. predicted vs actual for the latest upgrade, then the history.
 *
 * Live progress comes over upgrades.onProgress. Viewers see all of it; the
 * step buttons are replaced by an explanation, and the server refuses their
 * steps anyway. Server errors are shown as the server words them.
 */
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState } from "react";
import { errorMessage, trpcCode, useTRPC } from "../../../../_lib/trpc";
import { NodeHeader } from "../_parts/NodeHeader";
import { ErrorBox, Panel } from "./_parts/Bits";
import { ConfirmNode, OperatorOnly } from "./_parts/Guard";
import { HistoryPanel, fromVsnOf } from "./_parts/HistoryPanel";
import { ImpactPreview, LintList, killsText } from "./_parts/ImpactPreview";
import { OldCodePanel } from "./_parts/OldCodePanel";
import { PredictedVsActual } from "./_parts/PredictedVsActual";
import { ProgressLog, type ActiveStep } from "./_parts/ProgressLog";
import { PurgePicker, type PickerModule } from "./_parts/PurgePicker";
import { ReleasesPanel } from "./_parts/ReleasesPanel";
import { ScriptView } from "./_parts/ScriptView";
import { plannedKills, relupDefaults, type OldCode, type Plan, type Purge, type PurgeMap, type Releases, type Upgrade } from "./_parts/types";
import { useProgress } from "./_parts/useProgress";
import "./_parts/upgrade.css";
import { useNodeParam } from "../_parts/useNodeParam";


/** The chosen target lives in `?vsn=` so a review can be linked to. */
function useVsnParam(): [string | null, (vsn: string | null) => void] {
  const [vsn, setVsn] = useState<string | null>(() => new URLSearchParams(window.location.search).get("vsn"));
  const set = useCallback((next: string | null) => {
    setVsn(next);
    const url = new URL(window.location.href);
    if (next) url.searchParams.set("vsn", next);
    else url.searchParams.delete("vsn");
    window.history.replaceState(window.history.state, "", url);
  }, []);
  return [vsn, set];
}

function appOfModules(plan: Plan | undefined): Map<string, string> {
  return new Map((plan?.modules ?? []).filter((m) => m.app).map((m) => [m.module, m.app as string]));
}

export default function UpgradePage() {
  const node = useNodeParam();
  useEffect(() => {
    document.title = `Upgrade · ${node} · beamdeck`;
  }, [node]);
  return (
    <div className="page node-page up-page" key={node}>
      <NodeHeader node={node} />
      <UpgradeView node={node} />
    </div>
  );
}

function UpgradeView({ node }: { node: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();

  // ---- live progress; a finished step refreshes everything it changed ----
  const [active, setActive] = useState<ActiveStep | null>(null);
  const [results, setResults] = useState<Record<string, { ok: boolean; message: string | null }>>({});
  const refreshAll = useCallback(() => {
    void queryClient.invalidateQueries({ queryKey: trpc.upgrades.pathKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.nodes.get.queryKey({ node }) });
  }, [queryClient, trpc, node]);
  const progress = useProgress(node, (e) => {
    setResults((r) => ({ ...r, [e.commandId]: { ok: Boolean(e.ok), message: e.message ?? null } }));
    refreshAll();
  });

  // ---- what the node has ----
  const releasesQ = useQuery(trpc.upgrades.releases.queryOptions({ node }, { refetchInterval: 10_000, retry: false }));
  const releases = releasesQ.data as Releases | undefined;
  const history = useQuery(trpc.upgrades.history.queryOptions({ node }, { refetchInterval: (q) => ((q.state.data ?? []).some((u) => u.commands.some((c) => c.status === "sent" || c.status === "running")) ? 1000 : 10_000) }));
  const upgrades = (history.data ?? []) as Upgrade[];

  const installed = Boolean(releases?.current && releases.permanent && releases.current !== releases.permanent);
  const stepRunningOnServer = upgrades.some((u) => u.commands.some((c) => c.status === "sent" || c.status === "running"));
  const activeFinished = active ? (results[active.commandId] ?? finishedInHistory(upgrades, active.commandId)) : null;
  const busy = stepRunningOnServer || (active !== null && activeFinished === null);

  // ---- the target and the operator's choices ----
  const [target, setTarget] = useVsnParam();
  const pending = releases?.pending ?? [];
  useEffect(() => {
    if (!releases || installed) return;
    if (target && pending.some((p) => p.vsn === target)) return;
    setTarget(pending[0]?.vsn ?? null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [releases, installed]);
  // The node's name, typed anew for every step.
  const [confirmInstall, setConfirmInstall] = useState("");
  const [confirmDecision, setConfirmDecision] = useState("");
  const [post, setPost] = useState<PurgeMap>({});
  const [pre, setPre] = useState<PurgeMap>({});
  useEffect(() => {
    setPost({});
    setPre({});
    setConfirmInstall("");
  }, [target]);

  const choosing = Boolean(releases && !installed && target);
  const planQ = useQuery(
    trpc.upgrades.plan.queryOptions(
      { node, vsn: target ?? "-", purge: post, prePurge: pre },
      { enabled: choosing, placeholderData: keepPreviousData, staleTime: 30_000, retry: false },
    ),
  );
  // A kept-back preview of another target is not this target's.
  const plan = planQ.data && (planQ.data as unknown as Plan).to === target ? (planQ.data as unknown as Plan) : undefined;
  const planStale = planQ.isPlaceholderData || planQ.isFetching;
  // With the target version, the agent adds the path: the appups of the changed applications.
  const pathQ = useQuery(trpc.upgrades.releases.queryOptions({ node, vsn: target ?? "-" }, { enabled: choosing, staleTime: 60_000, retry: false }));
  const path = (pathQ.data as Releases | undefined)?.path ?? null;

  // ---- after install: old code, what make_permanent and rollback do ----
  const oldCodeQ = useQuery(trpc.upgrades.oldCode.queryOptions({ node }, { enabled: Boolean(releases), refetchInterval: installed ? 1000 : 10_000, retry: false }));
  const oldCode = oldCodeQ.data as OldCode | undefined;
  const permPlanQ = useQuery(trpc.upgrades.plan.queryOptions({ node, vsn: releases?.current ?? "-" }, { enabled: installed, staleTime: 5_000, retry: false }));
  const permPlan = permPlanQ.data as unknown as Plan | undefined;
  const currentUpgrade = installed ? upgrades.find((u) => u.toVsn === releases?.current && (u.status === "installed" || u.status === "installing" || u.status === "failed")) : undefined;
  // A rollback reinstalls the permanent release through the relup's down script, with the install's choices.
  const rbPlanQ = useQuery(
    trpc.upgrades.plan.queryOptions(
      { node, vsn: releases?.permanent ?? "-", purge: (currentUpgrade?.purge ?? {}) as PurgeMap, prePurge: (currentUpgrade?.prePurge ?? {}) as PurgeMap },
      { enabled: installed && history.isSuccess, staleTime: 30_000, retry: false },
    ),
  );
  const rbPlan = rbPlanQ.data as unknown as Plan | undefined;
  // Who is on old code changes (a process exits, a new one starts on old code): both previews follow.
  const oldKey = (oldCode?.modules ?? []).flatMap((m) => m.processes.map((p) => p.pid)).sort().join(",");
  useEffect(() => {
    if (!installed) return;
    void queryClient.invalidateQueries({ queryKey: trpc.upgrades.plan.queryKey() });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [oldKey]);

  // ---- steps ----
  const started = (action: string, vsn: string | null) => (r: { commandId: string }) => setActive({ commandId: r.commandId, action, vsn, startedAt: Date.now() });
  const unpack = useMutation(trpc.upgrades.unpack.mutationOptions());
  const install = useMutation(
    trpc.upgrades.install.mutationOptions({
      onError: (e) => {
        // The impact changed on the node: show the new one.
        if (trpcCode(e) === "CONFLICT") void planQ.refetch();
      },
    }),
  );
  const makePermanent = useMutation(trpc.upgrades.makePermanent.mutationOptions({ onError: () => void oldCodeQ.refetch() }));
  const rollback = useMutation(trpc.upgrades.rollback.mutationOptions());

  const defaults = useMemo(() => relupDefaults(plan?.relup.original ?? null), [plan]);
  const pickerModules: PickerModule[] = (plan?.modules ?? []).map((m) => ({
    module: m.module,
    app: m.app,
    op: m.op,
    hasOldCode: m.hasOldCode,
    defaultPre: defaults.get(m.module)?.pre ?? "brutal",
    defaultPost: defaults.get(m.module)?.post ?? "brutal",
  }));
  const kills = plan ? plannedKills(plan) : null;
  const targetEntry = pending.find((p) => p.vsn === target) ?? null;

  const doInstall = () => {
    if (!plan || !kills || !target) return;
    // Every module's post-purge explicitly: the server's make_permanent check reads the upgrade's choices.
    const explicitPost: PurgeMap = Object.fromEntries(pickerModules.map((m) => [m.module, post[m.module] ?? m.defaultPost]));
    install.mutate(
      // The digest of the plan shown: the agent refuses the step if its own plan kills anyone else.
      { node, vsn: target, purge: explicitPost, prePurge: pre, confirmNode: confirmInstall, acceptPlan: plan.digest },
      {
        onSuccess: (r) => {
          started("install", target)(r);
          setConfirmInstall("");
          setConfirmDecision("");
        },
      },
    );
  };

  // Who is on old code of a brutal post-purge module, for the old-code list.
  const postOf = (module: string): Purge | null => {
    const chosen = ((currentUpgrade?.purge ?? {}) as PurgeMap)[module];
    const planned = permPlan?.modules.find((m) => m.module === module)?.postPurge;
    const v = chosen ?? planned;
    return v === "soft" || v === "brutal" ? v : installed ? "brutal" : null;
  };
  // make_permanent kills what the agent's make_permanent plan says; the step sends that plan's digest.
  const permanentKills = permPlan ? plannedKills(permPlan).makePermanent.length : null;
  const rollbackKills = rbPlan ? plannedKills(rbPlan) : null;

  const latest = upgrades.find((u) => u.actualKills && Object.keys(u.actualKills as object).length > 0) ?? null;

  const sending = unpack.isPending ? "unpack" : install.isPending ? "install" : makePermanent.isPending ? "make permanent" : rollback.isPending ? "roll back" : null;

  if (releasesQ.error && !releases) {
    return (
      <>
        <ErrorBox error={releasesQ.error} what="Cannot read the node's releases" testid="releases-error" />
        {upgrades.length ? <HistoryPanel node={node} upgrades={upgrades} /> : null}
      </>
    );
  }
  if (!releases) return <div className="panel empty-state muted">Reading the node&apos;s releases…</div>;

  return (
    <div className="up-view" data-testid="upgrade-page" data-stage={installed ? "installed" : "choose"}>
      {sending ? (
        <div className="up-progress up-progress-running" data-testid="sending">
          <div className="up-progress-head">
            <span className="up-spinner" aria-hidden="true" />
            <b>Sending {sending} to the server…</b> <span className="muted">it records the intent in the audit log, re-checks the impact, then hands the step to the agent</span>
          </div>
        </div>
      ) : active ? (
        <ProgressLog step={active} events={progress.events} finished={activeFinished} onDismiss={activeFinished ? () => setActive(null) : undefined} />
      ) : null}
      {stepRunningOnServer && !active ? <div className="banner banner-down">A step is running on this node (started elsewhere); its progress shows below when it reports.</div> : null}

      <ReleasesPanel
        releases={releases}
        target={installed ? null : target}
        onSelect={(v) => setTarget(v)}
        onUnpack={(v) => unpack.mutate({ node, vsn: v }, { onSuccess: started("unpack", v) })}
        busy={busy}
      />
      <ErrorBox error={unpack.error} what="Unpack failed" onDismiss={() => unpack.reset()} testid="unpack-error" />

      {installed ? (
        <section className="up-decision-area" data-testid="decision-area">
          <div className="up-stage-head">
            <h2>
              {releases.current} is installed and running — {releases.permanent} is still permanent
            </h2>
            <p className="muted">
              A restart of the node would boot {releases.permanent}. Decide: make {releases.current} permanent (brutal post-purges kill whoever is still on old code, below), or roll back to {releases.permanent} through the relup&apos;s down
              instructions.
            </p>
          </div>
          <div className="up-cols">
            <div className="up-col">
              <OldCodePanel node={node} oldCode={oldCode} postOf={postOf} afterInstall error={oldCodeQ.error ? errorMessage(oldCodeQ.error) : null} />
            </div>
            <div className="up-col">
              <Panel title="Make permanent or roll back" testid="decision-panel">
                <OperatorOnly>
                  <ConfirmNode node={node} value={confirmDecision} onChange={setConfirmDecision} testid="confirm-decision" />
                  <div className="up-buttons">
                    <button
                      type="button"
                      className={`btn btn-primary up-go${permanentKills ? " up-go-danger" : ""}`}
                      data-testid="make-permanent"
                      data-kills={permanentKills ?? ""}
                      disabled={confirmDecision !== node || busy || !permPlan || permPlanQ.isFetching}
                      onClick={() =>
                        permPlan &&
                        makePermanent.mutate({ node, upgradeId: currentUpgrade?.id, confirmNode: confirmDecision, acceptPlan: permPlan.digest }, { onSuccess: (r) => (started("make_permanent", releases.current)(r), setConfirmDecision("")) })
                      }
                    >
                      Make {releases.current} permanent — {permanentKills === null ? "…" : permanentKills === 0 ? "kills none" : `kills ${permanentKills} now`}
                    </button>
                    <button
                      type="button"
                      className="btn up-go-secondary"
                      data-testid="rollback"
                      disabled={confirmDecision !== node || busy}
                      onClick={() => rollback.mutate({ node, upgradeId: currentUpgrade?.id, confirmNode: confirmDecision, acceptPlan: rbPlan?.digest }, { onSuccess: (r) => (started("rollback", releases.permanent)(r), setConfirmDecision("")) })}
                    >
                      Roll back to {releases.permanent} — {rollbackKills ? killsText(rollbackKills.install.length + rollbackKills.makePermanent.length, null) : rbPlanQ.error ? "impact unknown" : "…"}
                    </button>
                  </div>
                  {rbPlanQ.error ? <div className="muted">Rollback preview: {errorMessage(rbPlanQ.error)}</div> : null}
                </OperatorOnly>
                <ErrorBox error={makePermanent.error} what="Make permanent refused" onDismiss={() => makePermanent.reset()} testid="permanent-error" />
                <ErrorBox error={rollback.error} what="Roll back refused" onDismiss={() => rollback.reset()} testid="rollback-error" />
              </Panel>
              {currentUpgrade ? (
                <Panel title="Predicted vs actual so far" testid="pva-panel">
                  <PredictedVsActual node={node} u={currentUpgrade} />
                </Panel>
              ) : null}
              {permPlan ? <LintList node={node} lint={permPlan.lint} errors={permPlan.lintErrors} /> : null}
            </div>
          </div>
          {permPlan ? <ImpactPreview node={node} plan={permPlan} stale={permPlanQ.isFetching} fetching={permPlanQ.isFetching} onRecompute={() => void permPlanQ.refetch()} title={`What make_permanent does now`} /> : null}
          <ErrorBox error={permPlanQ.error} what="No preview" />
          {rbPlan ? (
            <details className="up-rollback-details" data-testid="rollback-details">
              <summary>
                What rolling back to {releases.permanent} does — {killsText(rollbackKills!.install.length + rollbackKills!.makePermanent.length, null)}
              </summary>
              <ImpactPreview node={node} plan={rbPlan} stale={rbPlanQ.isFetching} fetching={rbPlanQ.isFetching} onRecompute={() => void rbPlanQ.refetch()} title={`Impact of rolling back to ${releases.permanent}`} testid="rollback-impact-panel" />
            </details>
          ) : null}
        </section>
      ) : target ? (
        <section className="up-choose-area" data-testid="choose-area" data-target={target}>
          <div className="up-stage-head">
            <h2>
              Upgrade {releases.current} → {target}
            </h2>
            {plan ? (
              <span className="muted">
                {plan.relup.instructions} relup instruction(s) · {plan.modules.length} module(s) changed · {plan.direction === "down" ? "a downgrade" : "an upgrade"}
              </span>
            ) : null}
          </div>
          <ErrorBox error={planQ.error} what="No preview" testid="plan-error" />
          {plan ? (
            <>
              <LintList node={node} lint={plan.lint} errors={plan.lintErrors} />
              <div className="up-cols">
                <div className="up-col">
                  <PurgePicker
                    modules={pickerModules}
                    post={post}
                    pre={pre}
                    onPost={(m, v) => {
                      install.reset();
                      setPost((c) => withChoice(c, m, v, defaults.get(m)?.post));
                    }}
                    onPre={(m, v) => {
                      install.reset();
                      setPre((c) => withChoice(c, m, v, defaults.get(m)?.pre));
                    }}
                    recomputing={planStale}
                  />
                  <ScriptView
                    from={plan.from}
                    to={plan.to}
                    relupFile={plan.relupFile}
                    original={plan.relup.original}
                    rewritten={plan.relup.rewritten}
                    changes={plan.relup.changes}
                    appups={path && path.to === target ? path.appups : null}
                    appupNote={pathQ.isPending ? "Reading the appups…" : pathQ.error ? errorMessage(pathQ.error) : "The agent returned no upgrade path for this version."}
                    appOf={appOfModules(plan)}
                  />
                </div>
                <div className="up-col">
                  <ImpactPreview node={node} plan={plan} stale={planStale} fetching={planQ.isFetching} onRecompute={() => void planQ.refetch()} title={`Impact of installing ${target}`} />
                  <Panel title={`Install ${target}`} testid="install-panel">
                    {targetEntry?.state === "package" ? (
                      <p className="up-needs-unpack" data-testid="needs-unpack">
                        {target} is still a package: unpack it (above) before installing. The preview reads the package as it is.
                      </p>
                    ) : (
                      <OperatorOnly>
                        <ConfirmNode node={node} value={confirmInstall} onChange={setConfirmInstall} testid="confirm-install" />
                        <InstallButton
                          vsn={target}
                          plan={plan}
                          stale={planStale}
                          busy={busy || install.isPending}
                          confirmed={confirmInstall === node}
                          kills={kills!}
                          onClick={doInstall}
                        />
                      </OperatorOnly>
                    )}
                    <ErrorBox error={install.error} what="Install refused" onDismiss={() => install.reset()} testid="install-error" />
                  </Panel>
                </div>
              </div>
            </>
          ) : planQ.isFetching ? (
            <div className="panel empty-state muted">Computing the impact on the live node…</div>
          ) : null}
          {oldCode && oldCode.total > 0 ? <OldCodePanel node={node} oldCode={oldCode} postOf={() => null} afterInstall={false} /> : null}
        </section>
      ) : null}

      {latest && !installed ? (
        <Panel title={`Predicted vs actual — ${fromVsnOf(latest)} → ${latest.toVsn} (${latest.status})`} testid="pva-panel">
          <PredictedVsActual node={node} u={latest} />
        </Panel>
      ) : null}
      <HistoryPanel node={node} upgrades={upgrades} />
    </div>
  );
}

/** A choice equal to the relup's own setting is no choice: it drops out (and out of the query key). */
function withChoice(c: PurgeMap, module: string, v: Purge, dflt: Purge | undefined): PurgeMap {
  const next = { ...c };
  if (v === (dflt ?? "brutal")) delete next[module];
  else next[module] = v;
  return next;
}

function finishedInHistory(upgrades: Upgrade[], commandId: string): { ok: boolean; message: string | null } | null {
  for (const u of upgrades) {
    const c = u.commands.find((x) => x.id === commandId);
    if (!c) continue;
    if (c.status === "ok") return { ok: true, message: null };
    if (c.status === "error" || c.status === "no_outcome") {
      const r = (c.result ?? null) as { error?: { message?: string } | null } | null;
      return { ok: false, message: r?.error?.message ?? c.status };
    }
  }
  return null;
}

function InstallButton({ vsn, plan, stale, busy, confirmed, kills, onClick }: { vsn: string; plan: Plan; stale: boolean; busy: boolean; confirmed: boolean; kills: { install: string[]; makePermanent: string[] }; onClick: () => void }) {
  const blocked = plan.verdict === "blocked";
  const total = kills.install.length + kills.makePermanent.length;
  const label = plan.nodeFate
    ? `Install ${vsn} — restarts the node`
    : blocked
      ? `Install ${vsn} — blocked: ${plan.counts.blocks_install} process(es) on old code with a soft pre-purge`
      : `Install ${vsn} — ${killsText(kills.install.length, kills.makePermanent.length)}`;
  const why = stale ? "the preview is being recomputed for your choices" : blocked ? "switch the pre-purge (advanced) to brutal, or wait until those processes leave the old code" : !confirmed ? "type the node name first" : busy ? "a step is running" : null;
  return (
    <div className="up-buttons">
      <button
        type="button"
        className={`btn btn-primary up-go${total > 0 || plan.nodeFate ? " up-go-danger" : ""}`}
        data-testid="install"
        data-kills={total}
        data-kills-now={kills.install.length}
        data-kills-later={kills.makePermanent.length}
        disabled={!confirmed || stale || busy || blocked}
        onClick={onClick}
      >
        {label}
      </button>
      {why ? <span className="muted up-why-disabled">{why}</span> : null}
      {plan.counts.stays_on_old_code > 0 ? <div className="up-aside">{plan.counts.stays_on_old_code} process(es) will stay on the old code; the next upgrade of that module kills them (brutal pre-purge) or is blocked by them (soft).</div> : null}
    </div>
  );
}
