/** `beamdeck events <node>` and `beamdeck alerts [ack|resolve <id>]`. */
import { z } from "zod";
import { check, countArg, parse, timeArg } from "../args";
import { call } from "../client";
import { usage } from "../errors";
import { ago, json, table } from "../format";
import type { Env } from "../../storage/database-url";

export async function events(argv: string[], env: Env): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { since: { type: "string" }, until: { type: "string" }, context: { type: "string" }, limit: { type: "string", default: "100" }, json: { type: "boolean" } },
    ["node"],
  );
  const since = values.since === undefined ? undefined : check(timeArg(), values.since, "--since");
  const until = values.until === undefined ? undefined : check(timeArg(), values.until, "--until");
  const limit = check(countArg(1, 1000), values.limit, "--limit");
  const node = positionals[0];
  const r = await call(env, (api) => api.events.list.query({ node, since, until, context: values.context as string | undefined, limit }));
  if (values.json) {
    console.log(json(r.events.map((e) => ({ ...e, at: new Date(e.at).toISOString() }))));
    return 0;
  }
  // The node's timeline: its events and, unless filtered by context, its upgrade steps, newest first.
  const steps = values.context === undefined ? await call(env, (api) => api.events.upgradeSteps.query({ node, since, until, limit: Math.min(limit, 200) })) : [];
  const rows: { at: number; cells: (string | number | null)[] }[] = [
    ...r.events.map((e) => ({
      at: e.at,
      cells: [
        e.seq,
        new Date(e.at).toISOString(),
        e.kind,
        e.context,
        e.supervisor,
        e.reason,
        e.offender ? `${e.offender.id ?? "?"} ${e.offender.pid ?? ""}` : null,
        e.expected ? `yes (${e.upgradeId})` : "",
      ],
    })),
    ...steps.map((s) => ({
      at: s.at,
      cells: [null, new Date(s.at).toISOString(), `upgrade.${s.action}`, s.vsn ? `to ${s.vsn}` : null, null, s.status, `by ${s.requestedBy}`, ""],
    })),
  ];
  rows.sort((a, b) => b.at - a.at);
  console.log(
    table(
      ["SEQ", "AT", "KIND", "CONTEXT", "SUPERVISOR", "REASON", "OFFENDER", "EXPECTED"],
      rows.slice(0, limit).map((x) => x.cells),
    ),
  );
  return 0;
}

export async function alerts(argv: string[], env: Env): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "ack" || sub === "resolve") {
    const { values, positionals } = parse(rest, { json: { type: "boolean" } }, ["id"]);
    const a = await call(env, (api) => (sub === "ack" ? api.alerts.ack.mutate({ id: positionals[0] }) : api.alerts.resolve.mutate({ id: positionals[0] })));
    if (values.json) console.log(json(a));
    else console.log(`${sub === "ack" ? "acknowledged" : "resolved"} alert ${a.id}: ${a.title}`);
    return 0;
  }
  if (sub && !sub.startsWith("-")) throw usage(`alerts takes ack <id>, resolve <id> or options, not "${sub}"`);
  const { values } = parse(argv, { status: { type: "string", default: "active" }, node: { type: "string" }, json: { type: "boolean" } }, []);
  const status = check(z.enum(["open", "acked", "resolved", "active", "all"]), values.status, "--status");
  const rows = await call(env, (api) => api.alerts.list.query({ status, node: values.node as string | undefined }));
  if (values.json) console.log(json(rows));
  else
    console.log(
      table(
        ["ID", "STATUS", "KIND", "NODE", "COUNT", "LAST", "TITLE", "WEBHOOKS"],
        rows.map((a) => [a.id, a.status, a.kind, a.node, a.count, ago(new Date(a.lastAt).getTime()), a.title, a.deliveries.map((d) => d.status).join(",") || null]),
      ),
    );
  return 0;
}
