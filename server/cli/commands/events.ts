/** `beamdeck events <node>` and `beamdeck alerts [ack|resolve <id>]`. */
import { z } from "zod";
import { check, countArg, parse, timeArg } from "../args";
import { call } from "../client";
import { usage } from "../errors";
import { ago, json, table } from "../format";
import type { Env } from "../../storage/database-url";
import { mergeTimeline, stepsBelong } from "../../events/timeline";

/** `kind` of an upgrade step in `events --json` (events have their own kinds: supervisor_report, …). */
const STEP_KIND = "upgrade_step";
const iso = (ms: number) => new Date(ms).toISOString();

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
  const context = values.context as string | undefined;
  const r = await call(env, (api) => api.events.list.query({ node, since, until, context, limit }));
  // The node's timeline as the events page shows it (server/events/timeline.ts): events and, unless filtered, upgrade steps.
  const steps = stepsBelong({ node, context }) ? await call(env, (api) => api.events.upgradeSteps.query({ node, since, until, limit: Math.min(limit, 200) })) : [];
  const items = mergeTimeline(r.events, steps, r.nextBefore === null);
  if (values.json) {
    console.log(
      json(items.map((x) => (x.event ? { ...x.event, at: iso(x.at) } : { kind: STEP_KIND, node, ...x.step, at: iso(x.at), finishedAt: x.step.finishedAt === null ? null : iso(x.step.finishedAt) }))),
    );
    return 0;
  }
  console.log(
    table(
      ["SEQ", "AT", "KIND", "CONTEXT", "SUPERVISOR", "REASON", "OFFENDER", "EXPECTED"],
      items.map(({ event: e, step: s }) =>
        e
          ? [e.seq, iso(e.at), e.kind, e.context, e.supervisor, e.reason, e.offender ? `${e.offender.id ?? "?"} ${e.offender.pid ?? ""}` : null, e.expected ? `yes (${e.upgradeId})` : ""]
          : [null, iso(s.at), `upgrade.${s.action}`, s.vsn ? `to ${s.vsn}` : null, null, s.status, `by ${s.requestedBy}`, ""],
      ),
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
