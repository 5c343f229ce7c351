/**
 * `beamdeck agent-token create|list|revoke`. Through the running server when
 * BEAMDECK_API_TOKEN is set; otherwise straight on the database (which the
 * embedded default allows only while no server holds it).
 */
import type { Env } from "../../storage/database-url";
import { createAgentToken, listAgentTokens, revokeAgentToken } from "../../auth/agent-tokens";
import { appendAudit } from "../../audit/log";
import { BeamdeckError } from "../../errors";
import { check, parse } from "../args";
import { call } from "../client";
import { CliError, usage } from "../errors";
import { ago, json, table } from "../format";
import { withLocalDatabase } from "../local";
import { z } from "zod";

const viaServer = (env: Env) => Boolean(env.BEAMDECK_API_TOKEN);

export async function agentToken(argv: string[], env: Env): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "create") return create(rest, env);
  if (sub === "list") return list(rest, env);
  if (sub === "revoke") return revoke(rest, env);
  throw usage(`agent-token needs create, list or revoke${sub ? `, not "${sub}"` : ""}`);
}

async function create(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { fleet: { type: "boolean" }, json: { type: "boolean" } }, ["label"]);
  const label = check(z.string().min(1).max(100), positionals[0], "label");
  const fleet = Boolean(values.fleet);
  let out: { id: string; token: string };
  if (viaServer(env)) {
    out = await call(env, (api) => api.tokens.agentCreate.mutate({ label, fleet }));
  } else {
    out = await withLocalDatabase(env, async (db) => {
      const t = await createAgentToken(db.prisma, { label, fleet, createdBy: "cli" });
      await appendAudit(db.prisma, { actor: "cli", action: "agent_token.create", target: `agent:${t.id}`, outcome: "ok", data: { label, fleet } });
      return t;
    });
  }
  if (values.json) console.log(json({ ...out, label, fleet }));
  else {
    console.log(out.token);
    console.error(`agent token ${out.id} (${label}${fleet ? ", fleet" : ", bound to the first node that uses it"}); shown once. Give it to the node as BEAMDECK_TOKEN.`);
  }
  return 0;
}

async function list(argv: string[], env: Env): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" } }, []);
  const rows = viaServer(env)
    ? await call(env, (api) => api.tokens.agentList.query())
    : await withLocalDatabase(env, (db) => listAgentTokens(db.prisma));
  if (values.json) console.log(json(rows));
  else
    console.log(
      table(
        ["ID", "LABEL", "NODE", "LAST USED", "STATUS"],
        rows.map((r) => [r.id, r.label, r.fleet ? "(fleet)" : (r.boundNode ?? "(unbound)"), r.lastUsedAt ? ago(new Date(r.lastUsedAt).getTime()) : "never", r.revokedAt ? "revoked" : "active"]),
      ),
    );
  return 0;
}

async function revoke(argv: string[], env: Env): Promise<number> {
  const { positionals } = parse(argv, {}, ["id"]);
  const id = positionals[0];
  if (viaServer(env)) {
    const r = await call(env, (api) => api.tokens.agentRevoke.mutate({ id }));
    console.log(`revoked agent token ${id}${r.disconnected ? `; disconnected ${r.disconnected} agent(s)` : ""}`);
    return 0;
  }
  await withLocalDatabase(env, async (db) => {
    try {
      await revokeAgentToken(db.prisma, id);
    } catch (e) {
      if (e instanceof BeamdeckError) throw new CliError(e.message);
      throw e;
    }
    await appendAudit(db.prisma, { actor: "cli", action: "agent_token.revoke", target: `agent:${id}`, outcome: "ok" });
  });
  console.log(`revoked agent token ${id}`);
  return 0;
}
