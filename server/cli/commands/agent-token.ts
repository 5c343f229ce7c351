/**
 * `beamdeck agent-token create|list|revoke|bind|release`. Through the running server when
 * BEAMDECK_API_TOKEN is set; otherwise straight on the database (which the
 * embedded default allows only while no server holds it).
 */
import type { Env } from "../../storage/database-url";
import { createAgentToken, fleetGroup, fleetPattern, listAgentTokens, revokeAgentToken, setNodeBinding } from "../../auth/agent-tokens";
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
  if (sub === "bind") return bind(rest, env, true);
  if (sub === "release") return bind(rest, env, false);
  throw usage(`agent-token needs create, list, revoke, bind or release${sub ? `, not "${sub}"` : ""}`);
}

async function create(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { fleet: { type: "string" }, group: { type: "string" }, json: { type: "boolean" } }, ["label"]);
  const label = check(z.string().min(1).max(100), positionals[0], "label");
  const pattern = values.fleet === undefined ? undefined : check(fleetPattern, values.fleet, "--fleet PATTERN");
  const group = values.group === undefined ? undefined : check(fleetGroup, values.group, "--group");
  if (group !== undefined && pattern === undefined) throw usage("--group needs --fleet PATTERN");
  const fleet = pattern !== undefined;
  let out: { id: string; token: string };
  if (viaServer(env)) {
    out = await call(env, (api) => api.tokens.agentCreate.mutate({ label, fleetPattern: pattern, fleetGroup: group }));
  } else {
    out = await withLocalDatabase(env, async (db) => {
      const t = await createAgentToken(db.prisma, { label, fleetPattern: pattern, fleetGroup: group, createdBy: "cli" });
      await appendAudit(db.prisma, {
        actor: "cli",
        action: "agent_token.create",
        target: `agent:${t.id}`,
        outcome: "ok",
        data: { label, fleet, fleetPattern: pattern ?? null, fleetGroup: group ?? null },
      });
      return t;
    });
  }
  if (values.json) console.log(json({ id: out.id, token: out.token, label, fleet, fleetPattern: pattern ?? null, fleetGroup: group ?? null }));
  else {
    console.log(out.token);
    const scope = fleet ? `fleet: names matching ${pattern}${group ? `, group ${group}` : ""}` : "bound to the first node that uses it";
    console.error(`agent token ${out.id} (${label}, ${scope}); shown once. Give it to the node as BEAMDECK_TOKEN.`);
  }
  return 0;
}

/** `bind NODE TOKEN_ID`: only that token may use the name; `release NODE`: the next token to use it claims it. */
async function bind(argv: string[], env: Env, binding: boolean): Promise<number> {
  const { positionals } = parse(argv, {}, binding ? ["node", "token-id"] : ["node"]);
  const node = check(z.string().min(1).max(255), positionals[0], "node");
  const tokenIdArg = binding ? check(z.string().regex(/^[a-z2-9]{10}$/, "a token id (10 characters, as listed)"), positionals[1], "token-id") : null;
  let previous: string | null;
  if (viaServer(env)) {
    previous = (await call(env, (api) => api.tokens.nodeBind.mutate({ node, tokenId: tokenIdArg }))).previous;
  } else {
    previous = await withLocalDatabase(env, async (db) => {
      let r: { previous: string | null };
      try {
        r = await setNodeBinding(db.prisma, node, tokenIdArg);
      } catch (e) {
        if (e instanceof BeamdeckError) throw new CliError(e.message);
        throw e;
      }
      await appendAudit(db.prisma, { actor: "cli", action: binding ? "node.bind" : "node.release", target: `node:${node}`, outcome: "ok", data: { previous: r.previous, tokenId: tokenIdArg } });
      return r.previous;
    });
  }
  console.log(binding ? `node ${node} bound to agent token ${tokenIdArg} (was ${previous ?? "unbound"})` : `node ${node} released (was bound to ${previous ?? "nothing"})`);
  return 0;
}

async function list(argv: string[], env: Env): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" } }, []);
  const rows = viaServer(env) ? await call(env, (api) => api.tokens.agentList.query()) : await withLocalDatabase(env, (db) => listAgentTokens(db.prisma));
  if (values.json) console.log(json(rows));
  else
    console.log(
      table(
        ["ID", "LABEL", "NODE", "LAST USED", "STATUS"],
        rows.map((r) => [
          r.id,
          r.label,
          r.fleet ? `(fleet ${r.fleetPattern ?? ""}${r.fleetGroup ? ` group ${r.fleetGroup}` : ""})` : (r.boundNode ?? "(unbound)"),
          r.lastUsedAt ? ago(new Date(r.lastUsedAt).getTime()) : "never",
          r.revokedAt ? "revoked" : "active",
        ]),
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
