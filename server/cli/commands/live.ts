/** `beamdeck nodes | procs | tree | proc`: the live node view from the terminal. */
import type { Env } from "../../storage/database-url";
import { z } from "zod";
import type { TreeNode, LinkedProcess } from "../../agents/protocol";
import { check, parse } from "../args";
import { call } from "../client";
import { ago, bytes, json, table } from "../format";

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
          n.topMailbox ? `${n.topMailbox.mailbox} ${n.topMailbox.name ?? n.topMailbox.pid}` : null,
          n.connected ? "now" : ago(n.lastSeenAt),
        ]),
      ),
    );
  return 0;
}

export async function procs(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { sort: { type: "string", default: "mailbox" }, limit: { type: "string", default: "20" }, filter: { type: "string" }, json: { type: "boolean" } },
    ["node"],
  );
  const sort = check(z.enum(["mailbox", "memory", "reductions"]), values.sort, "--sort");
  const limit = check(z.coerce.number().int().min(1).max(1000), values.limit, "--limit");
  const w = await call(env, (api) => api.procs.window.query({ node: positionals[0], sort, desc: true, limit, filter: values.filter as string | undefined }));
  if (values.json) console.log(json(w.rows));
  else {
    console.log(
      table(
        ["PID", "NAME", "MAILBOX", "MEMORY", "REDUCTIONS", "CURRENT FUNCTION", "INITIAL CALL"],
        w.rows.map((p) => [p.oldCode ? `${p.pid} [old code: ${p.oldCodeModules.join(",")}]` : p.pid, p.name, p.mailbox, bytes(p.memory), p.reductions, p.currentFunction, p.initialCall]),
      ),
    );
    console.log(`(${w.rows.length} of ${w.matched}${w.matched !== w.total ? ` matching, ${w.total} in all` : ""}; sorted by ${sort})`);
  }
  return 0;
}

function renderTree(node: TreeNode, indent: string, out: string[]): void {
  const label = node.name && node.name !== node.id ? `${node.id} (${node.name})` : node.id;
  out.push(`${indent}${node.kind === "supervisor" ? "▾" : "•"} ${label} ${node.pid ?? "(not running)"}${node.timeout ? " [supervisor did not answer]" : ""}`);
  for (const l of node.linked) renderLinked(l, `${indent}    `, out);
  for (const c of node.children) renderTree(c, `${indent}  `, out);
}

function renderLinked(l: LinkedProcess, indent: string, out: string[]): void {
  out.push(`${indent}↳ ${l.pid}${l.name ? ` ${l.name}` : ""} ${l.initialCall ?? ""} [linked, not supervised]`);
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

export async function proc(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" } }, ["node", "pid"]);
  const pid = check(z.string().regex(/^<\d+\.\d+\.\d+>$/, 'a pid like "<0.116.0>"'), positionals[1], "pid");
  const d = await call(env, (api) => api.procs.detail.query({ node: positionals[0], pid }));
  if (values.json) {
    console.log(json({ ...(d.record ?? {}), ...d }));
    return 0;
  }
  const r = d.record;
  const lines = [
    `pid:               ${d.pid}`,
    `name:              ${r?.name ?? "-"}`,
    `initial call:      ${r?.initialCall ?? "-"}`,
    `current function:  ${r?.currentFunction ?? "-"}`,
    `mailbox:           ${d.messageQueueLen ?? r?.mailbox ?? "-"}`,
    `memory:            ${bytes(r?.memory)}`,
    `reductions:        ${r?.reductions ?? "-"}`,
    `status:            ${r?.status ?? "-"}`,
    `links:             ${d.links.join(" ") || "-"}`,
    `stack modules:     ${d.stackModules.join(" ") || "-"}`,
    "stacktrace:",
    ...d.stacktrace.map((f) => `  ${f.mfa}${f.file ? ` (${f.file}:${f.line ?? "?"})` : ""}`),
  ];
  console.log(lines.join("\n"));
  return 0;
}
