/** `beamdeck system | ets | ports <node>`: Observer's system views from the terminal. */
import { z } from "zod";
import type { Env } from "../../storage/database-url";
import { ETS_SORTS, PORT_SORTS } from "../../agents/system-views";
import { check, countArg, parse } from "../args";
import { call } from "../client";
import { CliError } from "../errors";
import { bytes, json, table } from "../format";

const limitArg = countArg(1, 1000);
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

export async function system(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: "boolean" } }, ["node"]);
  const r = await call(env, (api) => api.system.overview.query({ node: positionals[0] }));
  if (values.json) {
    console.log(json(r.latest));
    return r.latest ? 0 : 1;
  }
  if (!r.supported) throw new CliError(`the agent on ${positionals[0]} has no system views (upgrade the agent)`);
  const o = r.latest;
  if (!o) throw new CliError(`no overview of ${positionals[0]} yet (the server asks every ${r.everyMs / 1000} s); try again shortly`);
  const c = o.counts;
  console.log(`${positionals[0]}  OTP ${o.otpRelease}  up ${Math.round(o.uptimeMs / 60_000)} min  as of ${new Date(o.at).toISOString()}`);
  console.log(
    `schedulers ${o.schedulersOnline}/${o.schedulers} (+${o.dirtyCpuSchedulers} dirty CPU)  utilisation ${o.schedulerUtilization ? pct(o.schedulerUtilization.total) : "-"}  run queue ${o.runQueue}`,
  );
  console.log(
    table(
      ["", "COUNT", "LIMIT", "USED"],
      (["processes", "ports", "atoms", "ets"] as const).map((k) => [k, c[k].count, c[k].limit, pct(c[k].limit ? c[k].count / c[k].limit : 0)]),
    ),
  );
  const m = o.memory;
  console.log(
    table(
      ["MEMORY", "BYTES"],
      [
        ["total", bytes(m.total)],
        ["processes", bytes(m.processes)],
        ["ets", bytes(m.ets)],
        ["binary", bytes(m.binary)],
        ["code", bytes(m.code)],
        ["atom", bytes(m.atom)],
        ["other system", bytes(m.system - m.ets - m.binary - m.code - m.atom)],
      ],
    ),
  );
  console.log(`io in ${bytes(o.io.input)}  out ${bytes(o.io.output)}  gc ${o.gc.count}  reductions ${o.reductions}`);
  return 0;
}

export async function ets(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { sort: { type: "string", default: "memory" }, limit: { type: "string", default: "20" }, json: { type: "boolean" } }, ["node"]);
  const sort = check(z.enum(ETS_SORTS), values.sort, "--sort");
  const limit = check(limitArg, values.limit, "--limit");
  const r = await call(env, (api) => api.system.ets.query({ node: positionals[0], sort, limit }));
  if (values.json) console.log(json(r));
  else {
    console.log(
      table(
        ["TABLE", "TYPE", "PROTECTION", "SIZE", "MEMORY", "OWNER"],
        r.tables.map((t) => [t.named ? t.name : `${t.name} ${t.id}`, t.type, t.protection, t.size, bytes(t.memory), t.ownerName ? `${t.ownerName} ${t.owner}` : t.owner]),
      ),
    );
    console.log(`(${r.tables.length} of ${r.total} tables${r.partial ? `, first ${r.scanned} scanned` : ""}; sorted by ${sort})`);
  }
  return 0;
}

export async function ports(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(argv, { sort: { type: "string", default: "io" }, limit: { type: "string", default: "20" }, json: { type: "boolean" } }, ["node"]);
  const sort = check(z.enum(PORT_SORTS), values.sort, "--sort");
  const limit = check(limitArg, values.limit, "--limit");
  const r = await call(env, (api) => api.system.ports.query({ node: positionals[0], sort, limit }));
  if (values.json) console.log(json(r));
  else {
    console.log(
      table(
        ["PORT", "KIND", "NAME", "LOCAL", "PEER", "IN", "OUT", "OWNER"],
        r.ports.map((p) => [
          p.id,
          p.kind,
          p.name.length > 30 ? `${p.name.slice(0, 29)}…` : p.name,
          p.local,
          p.peer,
          bytes(p.input),
          bytes(p.output),
          p.ownerName ? `${p.ownerName} ${p.owner}` : p.owner,
        ]),
      ),
    );
    console.log(`(${r.ports.length} of ${r.total} ports${r.partial ? `, first ${r.scanned} scanned` : ""}; sorted by ${sort})`);
  }
  return 0;
}
