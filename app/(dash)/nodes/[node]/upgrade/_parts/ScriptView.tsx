"use client";
/**
 * The upgrade path, readable: the appups of the changed applications and
 * the low-level relup script, both grouped per application and module,
 * purge settings highlighted (brutal in red), the operator's changes shown
 * against the original. The raw script, in order, is one click away.
 */
import { Atom } from "../../../../../_components/Names";
import { Panel, PurgeChip } from "./Bits";
import type { Appup, AppupInstruction, PlanChange, RelupInstruction } from "./types";

/** The modules an instruction is about. */
function modulesOf(i: RelupInstruction): string[] {
  if (i.module) return [i.module];
  if (i.modules) return i.modules.map((m) => (typeof m === "string" ? m : m.module));
  return [];
}

const OP_HELP: Record<string, string> = {
  load_object_code: "reads the new object code into memory (nothing changes yet)",
  point_of_no_return: "from here on a failure restarts the node with the old release",
  load: "loads the new code; the old code stays until purged",
  remove: "makes the current code old; it is purged like a load",
  suspend: "suspends the processes whose child spec lists the module",
  resume: "resumes them, on the new code",
  code_change: "calls code_change in the suspended processes",
  purge: "kills processes on the old code and purges it, during install",
  apply: "calls a function",
  restart_new_emulator: "restarts the emulator: every process stops",
  restart_emulator: "restarts the emulator at the end of the install",
};

interface Grouped {
  apps: { app: string; vsn: string | null; modules: { module: string; steps: { n: number; i: RelupInstruction }[] }[] }[];
  node: { n: number; i: RelupInstruction }[];
}

function group(script: RelupInstruction[], appOfModule: Map<string, string>): Grouped {
  const apps = new Map<string, { app: string; vsn: string | null; modules: Map<string, { n: number; i: RelupInstruction }[]> }>();
  const node: { n: number; i: RelupInstruction }[] = [];
  const appEntry = (app: string, vsn: string | null = null) => {
    let a = apps.get(app);
    if (!a) {
      a = { app, vsn, modules: new Map() };
      apps.set(app, a);
    }
    if (vsn && !a.vsn) a.vsn = vsn;
    return a;
  };
  for (const i of script) {
    if (i.op === "load_object_code" && i.app) {
      for (const m of modulesOf(i)) appOfModule.set(m, i.app);
    }
  }
  script.forEach((i, idx) => {
    const mods = modulesOf(i);
    if (mods.length === 0) {
      node.push({ n: idx + 1, i });
      return;
    }
    for (const m of mods) {
      const a = appEntry(appOfModule.get(m) ?? (i.op === "load_object_code" && i.app ? i.app : "?"), i.op === "load_object_code" ? (i.appVsn ?? null) : null);
      const steps = a.modules.get(m) ?? [];
      steps.push({ n: idx + 1, i });
      a.modules.set(m, steps);
    }
  });
  return {
    apps: [...apps.values()].map((a) => ({ app: a.app, vsn: a.vsn, modules: [...a.modules.entries()].map(([module, steps]) => ({ module, steps })) })),
    node,
  };
}

function changeOf(changes: PlanChange[], module: string | undefined, field: "prePurge" | "postPurge"): PlanChange | null {
  return changes.find((c) => c.module === module && c.field === field) ?? null;
}

function Instruction({ n, i, changes }: { n: number; i: RelupInstruction; changes: PlanChange[] }) {
  const purge = i.op === "load" || i.op === "remove";
  const pre = changeOf(changes, i.module, "prePurge");
  const post = changeOf(changes, i.module, "postPurge");
  return (
    <li className={`up-instr${pre || post ? " up-instr-changed" : ""}`} data-testid="relup-instruction" data-op={i.op} data-module={i.module ?? ""}>
      <span className="up-instr-n">{n}</span>
      <span className="up-op" title={OP_HELP[i.op] ?? ""}>
        {i.op}
      </span>
      {i.op === "load_object_code" ? (
        <span className="muted">
          {i.app} {i.appVsn}
        </span>
      ) : null}
      {i.op === "apply" && i.mfa ? <span className="mfa">{i.mfa}</span> : null}
      {purge ? (
        <span className="up-purges" data-testid="relup-purges">
          <PurgeChip label="pre" value={i.prePurge ?? "?"} changedFrom={pre?.from} />
          <PurgeChip label="post" value={i.postPurge ?? "?"} changedFrom={post?.from} />
        </span>
      ) : null}
      <span className="up-instr-help muted">{OP_HELP[i.op] ?? ""}</span>
    </li>
  );
}

function AppupInstr({ i }: { i: AppupInstruction }) {
  const defaulted = new Set(i.defaulted ?? []);
  return (
    <li className="up-instr" data-testid="appup-instruction" data-kind={i.kind}>
      <span className="up-op">{i.kind}</span>
      {i.kind === "update" ? <span className="muted">{i.codeChange ? "calls code_change" : i.change === "supervisor" ? "supervisor" : "no code_change"}</span> : null}
      {i.prePurge ? (
        <span className="up-purges">
          <PurgeChip label="pre" value={i.prePurge} defaulted={defaulted.has("prePurge")} />
          <PurgeChip label="post" value={i.postPurge ?? "?"} defaulted={defaulted.has("postPurge")} />
        </span>
      ) : null}
      <code className="up-instr-text">{i.text}</code>
    </li>
  );
}

function AppupView({ appups }: { appups: Appup[] }) {
  return (
    <div className="up-appups" data-testid="appups">
      {appups.map((a) => {
        const byModule = new Map<string, AppupInstruction[]>();
        for (const i of a.instructions) {
          const key = i.module ?? i.application ?? "";
          byModule.set(key, [...(byModule.get(key) ?? []), i]);
        }
        return (
          <div key={a.app} className="up-group" data-testid="appup" data-app={a.app}>
            <div className="up-group-head">
              <b>{a.app}</b>{" "}
              <span className="mono">
                {a.from ?? "–"} → {a.to ?? "–"}
              </span>{" "}
              <span className="muted">{a.change}</span>
              {a.file ? (
                <span className="up-file mono" title={a.file}>
                  {a.file}
                </span>
              ) : null}
            </div>
            {a.error ? (
              <div className="alert alert-warn up-file-error" data-testid="appup-error">
                {a.error.message}
              </div>
            ) : null}
            {[...byModule.entries()].map(([m, is]) => (
              <div key={m} className="up-module">
                {m ? <Atom text={m} /> : null}
                <ol className="up-instrs">
                  {is.map((i, k) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: instructions are positional (the order is the script) and the same one can appear twice
                    <AppupInstr key={k} i={i} />
                  ))}
                </ol>
              </div>
            ))}
          </div>
        );
      })}
    </div>
  );
}

export function ScriptView({
  from,
  to,
  relupFile,
  original,
  rewritten,
  changes,
  appups,
  appupNote,
  appOf,
}: {
  from: string;
  to: string;
  relupFile: string;
  original: RelupInstruction[] | null;
  rewritten: RelupInstruction[] | null;
  changes: PlanChange[];
  appups: Appup[] | null;
  appupNote?: string;
  appOf: Map<string, string>;
}) {
  const script = rewritten ?? original;
  const g = script ? group(script, new Map(appOf)) : null;
  return (
    <Panel title={`Upgrade path ${from} → ${to}`} testid="script-panel" meta={changes.length ? `${changes.length} purge setting(s) changed by your choices` : "as written in the relup"}>
      <h3>Appup (high level)</h3>
      {appups ? (
        appups.length ? (
          <AppupView appups={appups} />
        ) : (
          <p className="muted">No application changes version.</p>
        )
      ) : (
        <p className="muted" data-testid="appup-note">
          {appupNote}
        </p>
      )}
      <h3 className="up-h3-gap">Relup (what release_handler runs){changes.length ? " — with your choices" : ""}</h3>
      <div className="up-file mono" title={relupFile}>
        {relupFile}
      </div>
      {g ? (
        <div className="up-relup" data-testid="relup">
          {g.apps.map((a) => (
            <div key={a.app} className="up-group" data-testid="relup-app" data-app={a.app}>
              <div className="up-group-head">
                <b>{a.app}</b> {a.vsn ? <span className="mono">→ {a.vsn}</span> : null}
              </div>
              {a.modules.map((m) => (
                <div key={m.module} className="up-module" data-testid="relup-module" data-module={m.module}>
                  <Atom text={m.module} />
                  <ol className="up-instrs">
                    {m.steps.map((s) => (
                      <Instruction key={s.n} n={s.n} i={s.i} changes={changes} />
                    ))}
                  </ol>
                </div>
              ))}
            </div>
          ))}
          {g.node.length ? (
            <div className="up-group">
              <div className="up-group-head">
                <b>Node</b>
              </div>
              <ol className="up-instrs">
                {g.node.map((s) => (
                  <Instruction key={s.n} n={s.n} i={s.i} changes={changes} />
                ))}
              </ol>
            </div>
          ) : null}
          <details className="up-raw">
            <summary>Raw script, in order ({script!.length} instructions)</summary>
            <pre className="code">
              {script!.map((i, k) => {
                const changed = changes.some((c) => c.module === i.module) && (i.op === "load" || i.op === "remove");
                const orig = original?.[k];
                return (
                  // biome-ignore lint/suspicious/noArrayIndexKey: instructions are positional (the order is the script) and the same one can appear twice
                  <span key={k} className={changed ? "up-raw-changed" : ""}>
                    {changed && orig ? `% was ${orig.text}\n` : ""}
                    {i.text}
                    {k < script!.length - 1 ? ",\n" : "\n"}
                  </span>
                );
              })}
            </pre>
          </details>
        </div>
      ) : (
        <p className="muted">The script has more than 300 instructions; the agent leaves it out of the plan (beamdeck releases {"<node>"} --json shows it).</p>
      )}
    </Panel>
  );
}
