/** `beamdeck nodes | procs | tree | proc`: the live node view from the terminal. */
import type { Env } from "../../storage/database-url";
import { z } from "zod";
import type { TreeNode, LinkedProcess } from "../../agents/protocol";
import { check, countArg, parse } from "../args";
import { call } from "../client";
import { ago, bytes, json, table } from "../format";
import { mfaName, moduleName } from "../names";

export async function nodes(argv: string[], env: Env): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" } }, []);
  const rows = await call(env, (api) => api.nodes.list.query());
  if (values.json) console.log(json(rows));
  else
    console.log(
      table(
        ["NODE", "STATUS", "TOKEN", "OTP", "RELEASE", "PROCS", "OLD CODE", "TOP MAILBOX", "LAST SEEN"],
        rows.map((n) => [
          n.name,
          n.connected ? (n.instance ? `connected (instance ${n.instance})` : "connected") : "disconnected",
          n.boundTokenId ?? "(unbound)",
          n.otpRelease,
          n.release ? `${n.release.name} ${n.release.vsn}` : null,
          n.processCount,
          n.oldCode,
          n.topMailbox ? `${n.topMailbox.mailbox} ${n.topMailbox.name ? moduleName(n.topMailbox.name) : n.topMailbox.pid}` : null,
          n.connected ? "now" : ago(n.lastSeenAt),
        ]),
      ),
    );
  return 0;
}

export async function groups(argv: string[], env: Env): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" } }, []);
  const list = await call(env, (api) => api.groups.list.query());
  if (values.json) console.log(json(list));
  else
    console.log(
      table(
        ["GROUP", "NODE", "STATUS", "RELEASE", "OLD CODE", "DRIFT"],
        list.flatMap((g) =>
          g.nodes.map((n, i) => [
            i === 0 ? g.name : "",
            n.name,
            n.connected ? "connected" : `disconnected ${ago(n.lastSeenAt)}`,
            n.release ? `${n.release.name} ${n.release.vsn}` : null,
            n.oldCode,
            i === 0 && g.drift ? `yes: ${g.versions.join(" / ")}` : "",
          ]),
        ),
      ),
    );
  return 0;
}

export async function procs(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { sort: { type: "string", default: "mailbox" }, limit: { type: "string", default: "20" }, filter: { type: "string" }, json: { type: "boolean" } }, [
    "node",
  ]);
  const sort = check(z.enum(["mailbox", "memory", "reductions"]), values.sort, "--sort");
  const limit = check(countArg(1, 1000), values.limit, "--limit");
  const w = await call(env, (api) => api.procs.window.query({ node: positionals[0], sort, desc: true, limit, filter: values.filter as string | undefined }));
  if (values.json) console.log(json(w.rows));
  else {
    console.log(
      table(
        ["PID", "NAME", "MAILBOX", "MEMORY", "REDUCTIONS", "CURRENT FUNCTION", "INITIAL CALL", ...(w.stackSearch ? ["ON STACK"] : [])],
        w.rows.map((p) => [
          p.oldCode ? `${p.pid} [old code: ${p.oldCodeModules.join(",")}]` : p.pid,
          p.name ? moduleName(p.name) : p.label ? `(${moduleName(p.label)})` : null,
          p.mailbox,
          bytes(p.memory),
          p.reductions,
          p.currentFunction ? mfaName(p.currentFunction) : null,
          p.initialCall ? mfaName(p.initialCall) : null,
          ...(w.stackSearch ? [p.stackMatch.map(moduleName).join(",")] : []),
        ]),
      ),
    );
    const s = w.stackSearch;
    const stack = s ? `; stacks and callback modules: scanned ${s.scanned} of ${s.total}${s.partial ? " (time budget spent)" : ""}` : "";
    console.log(`(${w.rows.length} of ${w.matched}${w.matched !== w.total ? ` matching, ${w.total} in all` : ""}; sorted by ${sort}${stack})`);
  }
  return 0;
}

function renderTree(node: TreeNode, indent: string, out: string[]): void {
  const label = node.name && node.name !== node.id ? `${moduleName(node.id)} (${moduleName(node.name)})` : moduleName(node.id);
  out.push(`${indent}${node.kind === "supervisor" ? "▾" : "•"} ${label} ${node.pid ?? "(not running)"}${node.timeout ? " [supervisor did not answer]" : ""}`);
  for (const l of node.linked) renderLinked(l, `${indent}    `, out);
  for (const c of node.children) renderTree(c, `${indent}  `, out);
}

function renderLinked(l: LinkedProcess, indent: string, out: string[]): void {
  out.push(`${indent}↳ ${l.pid}${l.name ? ` ${moduleName(l.name)}` : ""} ${l.initialCall ? mfaName(l.initialCall) : ""} [linked, not supervised]`);
  for (const c of l.linked) renderLinked(c, `${indent}  `, out);
}

export async function tree(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" } }, ["node"]);
  const t = await call(env, (api) => api.procs.tree.query({ node: positionals[0] }));
  if (values.json) {
    console.log(json(t));
    return 0;
  }
  const out: string[] = [];
  for (const app of t.apps) {
    out.push(`${app.name} ${app.vsn ?? ""}`.trim());
    if (app.root) renderTree(app.root, "  ", out);
    else out.push("  (no supervision tree: a library application)");
  }
  console.log(out.join("\n"));
  return 0;
}
