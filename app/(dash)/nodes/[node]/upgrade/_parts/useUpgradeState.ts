"use client";
/**
 * Everything the Upgrade page knows about one node, and which stage it is
 * in (issue 11, item 4): the queries, the operator's choices (in the URL),
 * the step this page started and the flags derived from them. The stages
 * only render what this hook hands them.
 *
 * - choose: no release is installed-but-not-permanent; a pending target is
 *   reviewed (choices, impact, Install);
 * - decide: a release is installed and not yet permanent (make permanent or
 *   roll back);
 * - idle: nothing pending; loading / unreadable: the releases are not known.
 */
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { parseFallback } from "../../../../../_lib/duration";
import { trpcCode, useTRPC } from "../../../../../_lib/trpc";
import { useUrlState } from "../../../../../_lib/url-state";
import { decodeChoices, encodeChoices, withChoice } from "./choices";
import type { PickerModule } from "./PurgePicker";
import { type Plan, plannedKills, relupDefaults, type Purge, type PurgeMap, type Upgrade } from "./types";
import { useHistory } from "./useHistory";
import { useStep } from "./useStep";

export type Stage = "loading" | "unreadable" | "idle" | "choose" | "decide";

const URL_KEYS = ["vsn", "post", "pre"] as const;

function isRunning(upgrades: Upgrade[]): boolean {
  return upgrades.some((u) => u.commands.some((c) => c.status === "sent" || c.status === "running"));
}

export function useUpgradeState(node: string) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();

  // ---- the step this page started; its end refreshes what it changed ----
  const refreshAll = useCallback(() => {
    void queryClient.invalidateQueries({ queryKey: trpc.upgrades.pathKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.nodes.get.queryKey({ node }) });
  }, [queryClient, trpc, node]);
  const step = useStep(node, refreshAll);

  // ---- what the node has ----
  const releasesQ = useQuery(trpc.upgrades.releases.queryOptions({ node }, { refetchInterval: 10_000, retry: false }));
  const releases = releasesQ.data;
  const history = useHistory(node);
  const upgrades = history.upgrades;
  const installed = Boolean(releases?.current && releases.permanent && releases.current !== releases.permanent);
  const stepRunningOnServer = isRunning(upgrades);
  const busy = stepRunningOnServer || step.running;

  // ---- the target and the choices, as the URL holds them ----
  const [url, setUrl] = useUrlState(URL_KEYS, node);
  const pending = releases?.pending ?? [];
  const requested = url.vsn || null;
  /** A `?vsn=` that is not pending here is said so, never swapped for another silently. */
  const unknownVsn =
    releases && !installed && requested && !pending.some((p) => p.vsn === requested) ? { vsn: requested, status: releases.releases.find((r) => r.vsn === requested)?.status ?? null } : null;
  const target = !releases || installed || unknownVsn ? null : (requested ?? pending[0]?.vsn ?? null);
  const post = useMemo(() => decodeChoices(url.post), [url.post]);
  const pre = useMemo(() => decodeChoices(url.pre), [url.pre]);
  // The node's name, typed anew for every step.
  const [confirmInstall, setConfirmInstall] = useState("");
  // Error findings accepted one by one, per plan digest (a new plan starts over); one entry per shown plan.
  const [acceptedByDigest, setAcceptedByDigest] = useState<Record<string, string[]>>({});
  const [confirmDecision, setConfirmDecision] = useState("");
  // "Fall back automatically after": empty is no fallback timer.
  const [fallbackText, setFallbackText] = useState("");
  const fallback = fallbackText.trim() ? parseFallback(fallbackText) : null;
  // Once a release is installed the URL's choices are no longer in effect (the upgrade's record holds
  // what was installed): a reload after make permanent or roll back reviews the next pending release.
  useEffect(() => {
    if (installed && (url.vsn || url.post || url.pre)) setUrl({ vsn: null, post: null, pre: null });
  }, [installed, url.vsn, url.post, url.pre, setUrl]);
  const selectTarget = (vsn: string | null) => {
    setUrl({ vsn, post: null, pre: null });
    setConfirmInstall("");
  };

  // ---- the choose stage: the target's plan and path ----
  const choosing = Boolean(releases && !installed && target);
  const planQ = useQuery(
    trpc.upgrades.plan.queryOptions({ node, vsn: target ?? "-", purge: post, prePurge: pre }, { enabled: choosing, placeholderData: keepPreviousData, staleTime: 30_000, retry: false }),
  );
  // A kept-back preview of another target is not this target's.
  const planData = planQ.data;
  const plan = planData && planData.to === target ? planData : undefined;
  const planStale = planQ.isPlaceholderData || planQ.isFetching;
  // With the target version, the agent adds the path: the appups of the changed applications.
  const pathQ = useQuery(trpc.upgrades.releases.queryOptions({ node, vsn: target ?? "-" }, { enabled: choosing, staleTime: 60_000, retry: false }));
  const path = pathQ.data?.path ?? null;
  const defaults = useMemo(() => relupDefaults(plan?.relup.original ?? null), [plan]);
  const pickerModules: PickerModule[] = (plan?.modules ?? []).map((m) => ({
    module: m.module,
    app: m.app,
    op: m.op,
    hasOldCode: m.hasOldCode,
    defaultPre: defaults.get(m.module)?.pre ?? "brutal",
    defaultPost: defaults.get(m.module)?.post ?? "brutal",
  }));
  const chooseField = (field: "post" | "pre", module: string, v: Purge) => {
    install.reset();
    const current = field === "post" ? post : pre;
    const dflt = field === "post" ? defaults.get(module)?.post : defaults.get(module)?.pre;
    // The target goes with the choices: the link names exactly what was reviewed.
    setUrl({ vsn: target, [field]: encodeChoices(withChoice(current, module, v, dflt)) });
  };
  const kills = plan ? plannedKills(plan) : null;
  const targetEntry = pending.find((p) => p.vsn === target) ?? null;

  // ---- the decide stage: old code, what make_permanent and rollback do ----
  const oldCodeQ = useQuery(trpc.upgrades.oldCode.queryOptions({ node }, { enabled: Boolean(releases), refetchInterval: installed ? 1000 : 10_000, retry: false }));
  const oldCode = oldCodeQ.data;
  const permPlanQ = useQuery(trpc.upgrades.plan.queryOptions({ node, vsn: releases?.current ?? "-" }, { enabled: installed, staleTime: 5_000, retry: false }));
  const permPlan = permPlanQ.data;
  const currentUpgrade = installed ? upgrades.find((u) => u.toVsn === releases?.current && (u.status === "installed" || u.status === "installing" || u.status === "failed")) : undefined;
  // A rollback reinstalls the permanent release through the relup's down script, with the install's choices.
  const rbPlanQ = useQuery(
    trpc.upgrades.plan.queryOptions(
      { node, vsn: releases?.permanent ?? "-", purge: currentUpgrade?.purge ?? {}, prePurge: currentUpgrade?.prePurge ?? {} },
      { enabled: installed && history.loaded, staleTime: 30_000, retry: false },
    ),
  );
  const rbPlan = rbPlanQ.data;
  // Who is on old code changes (a process exits, a new one starts on old code): both previews follow.
  const oldKey = (oldCode?.modules ?? [])
    .flatMap((m) => m.processes.map((p) => p.pid))
    .sort()
    .join(",");
  const seenOldKey = useRef(oldKey);
  useEffect(() => {
    if (seenOldKey.current === oldKey) return;
    seenOldKey.current = oldKey;
    if (installed) void queryClient.invalidateQueries({ queryKey: trpc.upgrades.plan.queryKey() });
  }, [oldKey, installed, queryClient, trpc]);
  /** Who is on old code of a brutal post-purge module, for the old-code list. */
  const postOf = (module: string): Purge | null => {
    const chosen = currentUpgrade?.purge[module];
    const planned = permPlan?.modules.find((m) => m.module === module)?.postPurge;
    const v = chosen ?? planned;
    return v === "soft" || v === "brutal" ? v : installed ? "brutal" : null;
  };
  // make_permanent kills what the agent's make_permanent plan says; the step sends that plan's digest.
  const permanentKills = permPlan ? plannedKills(permPlan).makePermanent.length : null;
  const rollbackKills = rbPlan ? plannedKills(rbPlan) : null;

  // ---- steps ----
  const started = (action: string, vsn: string | null) => (r: { commandId: string }) => step.start({ commandId: r.commandId, action, vsn });
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
  const sending = unpack.isPending ? "unpack" : install.isPending ? "install" : makePermanent.isPending ? "make permanent" : rollback.isPending ? "roll back" : null;

  const doUnpack = (vsn: string) => unpack.mutate({ node, vsn }, { onSuccess: started("unpack", vsn) });
  /** The one-by-one acceptance of a plan's error findings: what is ticked, what is left, and the toggle. */
  const acceptanceOf = (p: Plan | undefined) => {
    const errors = (p?.findings ?? []).filter((f) => f.severity === "error").map((f) => f.id);
    const accepted = p ? (acceptedByDigest[p.digest] ?? []).filter((id) => errors.includes(id)) : [];
    const toggle = (id: string) => {
      if (!p) return;
      const ids = accepted.includes(id) ? accepted.filter((x) => x !== id) : [...accepted, id];
      // Keep only the plans on screen: the map stays as small as the page.
      const shown = [plan?.digest, permPlan?.digest, rbPlan?.digest].filter((d): d is string => Boolean(d) && d !== p.digest);
      setAcceptedByDigest((prev) => ({ ...Object.fromEntries(shown.filter((d) => prev[d]).map((d) => [d, prev[d]])), [p.digest]: ids }));
    };
    return { accepted, unaccepted: errors.filter((id) => !accepted.includes(id)), toggle };
  };
  const installAcceptance = acceptanceOf(plan);
  const acceptedFindings = installAcceptance.accepted;
  const unacceptedFindings = installAcceptance.unaccepted;
  const permAcceptance = acceptanceOf(permPlan);
  const rbAcceptance = acceptanceOf(rbPlan);
  const doInstall = () => {
    if (!plan || !target || fallback?.ok === false) return;
    // Every module's post-purge explicitly: the server's make_permanent check reads the upgrade's choices.
    const explicitPost: PurgeMap = Object.fromEntries(pickerModules.map((m) => [m.module, post[m.module] ?? m.defaultPost]));
    install.mutate(
      // The digest of the plan shown: the agent refuses the step if its own plan kills anyone else.
      {
        node,
        vsn: target,
        purge: explicitPost,
        prePurge: pre,
        confirmNode: confirmInstall,
        acceptPlan: plan.digest,
        ...(acceptedFindings.length ? { acceptFindings: acceptedFindings } : {}),
        ...(fallback?.ok ? { fallbackMs: fallback.ms } : {}),
      },
      {
        onSuccess: (r) => {
          started("install", target)(r);
          setConfirmInstall("");
          setConfirmDecision("");
        },
      },
    );
  };
  const doMakePermanent = () => {
    if (!permPlan || !releases) return;
    makePermanent.mutate(
      {
        node,
        upgradeId: currentUpgrade?.id,
        confirmNode: confirmDecision,
        acceptPlan: permPlan.digest,
        ...(permAcceptance.accepted.length ? { acceptFindings: permAcceptance.accepted } : {}),
      },
      {
        onSuccess: (r) => {
          started("make_permanent", releases.current)(r);
          setConfirmDecision("");
        },
      },
    );
  };
  const doRollback = () => {
    if (!releases) return;
    rollback.mutate(
      {
        node,
        upgradeId: currentUpgrade?.id,
        confirmNode: confirmDecision,
        acceptPlan: rbPlan?.digest,
        ...(rbAcceptance.accepted.length ? { acceptFindings: rbAcceptance.accepted } : {}),
      },
      {
        onSuccess: (r) => {
          started("rollback", releases.permanent)(r);
          setConfirmDecision("");
        },
      },
    );
  };

  const stage: Stage = releasesQ.error && !releases ? "unreadable" : !releases ? "loading" : installed ? "decide" : target ? "choose" : "idle";
  const latest = upgrades.find((u) => u.actualKills && Object.keys(u.actualKills as object).length > 0) ?? null;

  return {
    node,
    stage,
    releases,
    releasesError: releasesQ.error,
    upgrades,
    historyError: history.error,
    latest,
    installed,
    busy,
    stepRunningOnServer,
    step,
    sending,
    // choose
    target,
    unknownVsn,
    selectTarget,
    targetEntry,
    post,
    pre,
    chooseField,
    pickerModules,
    plan,
    planStale,
    planFetching: planQ.isFetching,
    planError: planQ.error,
    recomputePlan: () => void planQ.refetch(),
    path: path && path.to === target ? path : null,
    pathPending: pathQ.isPending,
    pathError: pathQ.error,
    kills,
    confirmInstall,
    setConfirmInstall,
    fallbackText,
    setFallbackText,
    fallbackError: fallback?.ok === false ? fallback.message : null,
    // decide
    oldCode,
    oldCodeError: oldCodeQ.error,
    postOf,
    currentUpgrade,
    permPlan,
    permPlanFetching: permPlanQ.isFetching,
    permPlanError: permPlanQ.error,
    recomputePermPlan: () => void permPlanQ.refetch(),
    permanentKills,
    rbPlan,
    rbPlanFetching: rbPlanQ.isFetching,
    rbPlanError: rbPlanQ.error,
    recomputeRbPlan: () => void rbPlanQ.refetch(),
    rollbackKills,
    confirmDecision,
    setConfirmDecision,
    // steps
    unpack,
    install,
    makePermanent,
    rollback,
    doUnpack,
    doInstall,
    acceptance: { accepted: installAcceptance.accepted, toggle: installAcceptance.toggle },
    unacceptedFindings,
    permAcceptance,
    rbAcceptance,
    doMakePermanent,
    doRollback,
  };
}

export type UpgradeState = ReturnType<typeof useUpgradeState>;
