/** `beamdeck user …`, `beamdeck token …`, `beamdeck audit [verify]`. */
import fs from "node:fs";
import { z } from "zod";
import { check, countArg, parse, timeArg } from "../args";
import { auditDetails, outcomeText } from "../audit-details";
import { call } from "../client";
import { CliError, usage } from "../errors";
import { ago, json, table } from "../format";
import { toCsv } from "../../audit/query";
import { roleSchema } from "../../auth/roles";
import type { Env } from "../../storage/database-url";

export async function user(argv: string[], env: Env): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "add") {
    const { values, positionals } = parse(rest, { role: { type: "string" }, "password-stdin": { type: "boolean" }, json: { type: "boolean" } }, ["name"]);
    if (!values.role) throw usage("user add needs --role viewer|operator|admin");
    const role = check(roleSchema, values.role, "--role");
    const password = values["password-stdin"] ? fs.readFileSync(0, "utf8").trim() : undefined;
    const u = await call(env, (api) => api.users.add.mutate({ username: positionals[0], role, password }));
    if (values.json) console.log(json(u));
    else console.log(`added ${u.username} (${u.role})${u.password ? `; password: ${u.password} (shown once)` : ""}`);
    return 0;
  }
  if (sub === "list") {
    const { values } = parse(rest, { json: { type: "boolean" } }, []);
    const rows = await call(env, (api) => api.users.list.query());
    if (values.json) console.log(json(rows));
    else
      console.log(
        table(
          ["USER", "ROLE", "CREATED", "BY", "STATE"],
          rows.map((u) => [
            u.username,
            u.role,
            new Date(u.createdAt).toISOString(),
            u.createdBy,
            u.disabled ? "disabled" : u.lockedUntil ? `login delayed until ${new Date(u.lockedUntil).toISOString()}` : "active",
          ]),
        ),
      );
    return 0;
  }
  if (sub === "role") {
    const { positionals } = parse(rest, {}, ["name", "role"]);
    const r = await call(env, (api) => api.users.setRole.mutate({ username: positionals[0], role: check(roleSchema, positionals[1], "role") }));
    console.log(`${r.username} is now ${r.role}`);
    return 0;
  }
  if (sub === "passwd") {
    const { positionals, values } = parse(rest, { "password-stdin": { type: "boolean" } }, ["name"]);
    const password = values["password-stdin"] ? fs.readFileSync(0, "utf8").trim() : undefined;
    const r = await call(env, (api) => api.users.resetPassword.mutate({ username: positionals[0], password }));
    console.log(r.password ? `new password for ${r.username}: ${r.password} (shown once); their sessions were ended` : `password of ${r.username} changed; their sessions were ended`);
    return 0;
  }
  if (sub === "disable" || sub === "enable") {
    const { positionals } = parse(rest, {}, ["name"]);
    await call(env, (api) => api.users.setDisabled.mutate({ username: positionals[0], disabled: sub === "disable" }));
    console.log(`${positionals[0]} ${sub}d`);
    return 0;
  }
  throw usage(`user needs add, list, role, passwd, disable or enable${sub ? `, not "${sub}"` : ""}`);
}

const EXPIRES = /^(\d+)([hdw])$/;

function parseExpiry(v: string): string {
  const m = EXPIRES.exec(v);
  if (m) return new Date(Date.now() + Number(m[1]) * { h: 3600_000, d: 86400_000, w: 7 * 86400_000 }[m[2] as "h" | "d" | "w"]).toISOString();
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw usage(`--expires takes a duration like 12h, 30d, 2w or an ISO date, not "${v}"`);
  if (d.getTime() <= Date.now()) throw usage("--expires is in the past");
  return d.toISOString();
}

export async function token(argv: string[], env: Env): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "create") {
    const { values } = parse(rest, { role: { type: "string" }, expires: { type: "string" }, label: { type: "string" }, json: { type: "boolean" } }, []);
    if (!values.role) throw usage("token create needs --role viewer|operator|admin");
    const role = check(roleSchema, values.role, "--role");
    const expiresAt = values.expires ? parseExpiry(values.expires as string) : undefined;
    const t = await call(env, (api) => api.tokens.apiCreate.mutate({ label: (values.label as string | undefined) ?? `cli ${role}`, role, expiresAt }));
    if (values.json) console.log(json(t));
    else {
      console.log(t.token);
      console.error(`API token ${t.id} (${role}${t.expiresAt ? `, expires ${t.expiresAt}` : ""}); shown once.`);
    }
    return 0;
  }
  if (sub === "list") {
    const { values } = parse(rest, { json: { type: "boolean" } }, []);
    const rows = await call(env, (api) => api.tokens.apiList.query());
    if (values.json) console.log(json(rows));
    else
      console.log(
        table(
          ["ID", "LABEL", "ROLE", "EXPIRES", "LAST USED", "STATUS"],
          rows.map((r) => [
            r.id,
            r.label,
            r.role,
            r.expiresAt ? new Date(r.expiresAt).toISOString() : "never",
            r.lastUsedAt ? ago(new Date(r.lastUsedAt).getTime()) : "never",
            r.revokedAt ? "revoked" : r.expiresAt && new Date(r.expiresAt) < new Date() ? "expired" : "active",
          ]),
        ),
      );
    return 0;
  }
  if (sub === "revoke") {
    const { positionals } = parse(rest, {}, ["id"]);
    await call(env, (api) => api.tokens.apiRevoke.mutate({ id: positionals[0] }));
    console.log(`revoked API token ${positionals[0]}`);
    return 0;
  }
  throw usage(`token needs create, list or revoke${sub ? `, not "${sub}"` : ""}`);
}

export async function audit(argv: string[], env: Env): Promise<number> {
  if (argv[0] === "verify") {
    const { values } = parse(argv.slice(1), { json: { type: "boolean" } }, []);
    const s = await call(env, (api) => api.audit.verify.query());
    if (values.json) console.log(json(s));
    else if (s.ok) console.log(`audit chain intact: ${s.checked} entries, head ${s.head.slice(0, 16)}…`);
    if (!s.ok) {
      if (!values.json) console.error(`audit chain BROKEN at entry ${s.firstBad?.id}: ${s.firstBad?.reason} (${s.checked} entries before it verified)`);
      return 1;
    }
    return 0;
  }
  const { values } = parse(
    argv,
    {
      actor: { type: "string" },
      node: { type: "string" },
      action: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      limit: { type: "string", default: "100" },
      json: { type: "boolean" },
      csv: { type: "boolean" },
    },
    [],
  );
  const limit = check(countArg(1, 500), values.limit, "--limit");
  const dt = (v: unknown, n: string) => (v === undefined ? undefined : check(timeArg(), v, n));
  const r = await call(env, (api) =>
    api.audit.list.query({
      actor: values.actor as string | undefined,
      node: values.node as string | undefined,
      action: values.action as string | undefined,
      from: dt(values.since, "--since"),
      to: dt(values.until, "--until"),
      limit,
    }),
  );
  if (values.json && values.csv) throw new CliError("--json and --csv exclude each other", 2);
  // Outcomes on this page, by the intent they answer.
  const answers = new Map(r.entries.filter((e) => e.intentId !== null).map((e) => [e.intentId as string, e]));
  if (values.json) console.log(json(r.entries));
  else if (values.csv) process.stdout.write(toCsv(r.entries));
  else
    console.log(
      table(
        ["ID", "AT", "ACTOR", "ACTION", "NODE", "TARGET", "OUTCOME", "DETAILS"],
        r.entries.map((e) => [e.id, e.at, e.actor, e.action, e.node, e.target, outcomeText(e, answers), auditDetails(e)]),
      ),
    );
  return 0;
}
