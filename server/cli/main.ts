/** The `beamdeck` command line. Every command is documented in docs/cli.md. */
import type { Env } from "../storage/database-url";
import { audit, token, user } from "./commands/admin";
import { alerts, events } from "./commands/events";
import { releases, upgrade } from "./commands/upgrade";
import { groups, nodes, procs, tree } from "./commands/live";
import { proc } from "./commands/proc";
import { takeTimeout, withDeadline } from "./deadline";
import { ets, ports, system } from "./commands/system";
import { CliError, EXIT, usage } from "./errors";

type Command = (argv: string[], env: Env) => Promise<number>;
/** A command's default overall deadline in ms for these arguments; null: none (it runs until stopped). */
type Deadline = (argv: string[]) => number | null;

const MINUTE = 60_000;
/** Most commands ask the server one or two questions. */
const DEFAULT_DEADLINE: Deadline = () => MINUTE;
/** Steps on a node: unpack copies a package; install and the rest wait for release_handler and the purges. */
const UPGRADE_DEADLINES: Record<string, number> = { plan: 3 * MINUTE, unpack: 5 * MINUTE, install: 15 * MINUTE, permanent: 15 * MINUTE, rollback: 15 * MINUTE };

const COMMANDS: Record<string, { run: Command; help: string; deadline?: Deadline }> = {
  server: {
    deadline: () => null,
    help: "server                              start the server (PORT, HOST, BEAMDECK_DATA_DIR, DATABASE_URL)",
    run: async (_argv, env) => {
      const { runServer } = await import("../gateway/main");
      await runServer(env);
      return new Promise<number>(() => {}); // runs until a signal
    },
  },
  // These two may open the database themselves: load Prisma only for them.
  init: {
    run: async (argv, env) => (await import("./commands/init")).init(argv, env),
    deadline: () => 3 * MINUTE,
    help: "init [--json]                       create the database and the first admin login + API token",
  },
  "agent-token": {
    run: async (argv, env) => (await import("./commands/agent-token")).agentToken(argv, env),
    deadline: () => 3 * MINUTE,
    help: "agent-token create <label> [--fleet PATTERN [--group G]] | list | revoke <id> | bind <node> <token-id> | release <node>",
  },
  nodes: { run: nodes, help: "nodes [--json]                      list nodes" },
  rollout: {
    run: async (argv, env) => (await import("./commands/rollout")).rollout(argv, env),
    // Following a rollout (status --wait) has no deadline; a plan asks every node.
    deadline: (argv) => (argv[0] === "status" && argv.includes("--wait") ? null : argv[0] === "plan" ? 3 * MINUTE : MINUTE),
    help: "rollout plan <group> <vsn> [--purge Mod=soft|brutal]... [--pre-purge ...] [--json]   every node's plan; exit by the worst node (4 > 5 > 3 > 0; 1: a node not planned)\n  beamdeck rollout start <group> <vsn> [--purge ...] [--pre-purge ...] [--canary N] [--batch N] [--soak 30s] [--max-kills N] [--accept-plan D]... [--accept-finding ID]... [--auto-rollback] --yes [--json]   prints the id\n  beamdeck rollout status <id> [--wait] [--json] | halt <id> [--reason R] | resume <id> | abort <id>   exit 8 while halted",
  },
  groups: { run: groups, help: "groups [--json]                     nodes per group (BEAMDECK_GROUP or release name), releases, drift" },
  procs: { run: procs, help: "procs <node> [--sort mailbox|memory|reductions] [--limit N] [--filter TEXT] [--json]" },
  tree: { run: tree, help: "tree <node> [--json]                supervision trees" },
  proc: { run: proc, help: "proc <node> <pid> [--json]          one process in detail" },
  system: { run: system, help: "system <node> [--json]              node overview: memory, counts vs limits, schedulers, run queues" },
  ets: { run: ets, help: "ets <node> [--sort memory|size|name] [--limit N] [--json]   ETS tables, largest first" },
  ports: { run: ports, help: "ports <node> [--sort io|input|output|name] [--limit N] [--json]   ports and sockets, busiest first" },
  events: { run: events, help: "events <node> [--since ISO|30m] [--until ISO|30m] [--context C] [--limit N] [--json]" },
  alerts: { run: alerts, help: "alerts [--status active|open|acked|resolved|all] [--json] | alerts ack <id> | alerts resolve <id>" },
  releases: { run: releases, help: "releases <node> [--json]            installed, unpacked and pending releases" },
  upgrade: {
    run: upgrade,
    deadline: ([sub]) => UPGRADE_DEADLINES[sub ?? ""] ?? MINUTE,
    help: "upgrade plan <node> <vsn> [--purge Mod=soft|brutal]... [--pre-purge Mod=soft|brutal]... [--json]   (exit 3: would kill, 4: blocked)\n  beamdeck upgrade install|permanent <node> <vsn> [--purge ...] --yes | unpack <node> <vsn> | rollback <node> --yes | status <node>",
  },
  user: { run: user, help: "user add <name> --role R [--password-stdin] | list | role <name> <R> | passwd <name> | disable|enable <name>" },
  token: { run: token, help: "token create --role R [--expires 30d|ISO] [--label L] | list | revoke <id>" },
  audit: { run: audit, help: "audit [--actor A] [--node N] [--action X] [--since ISO] [--until ISO] [--json|--csv] | audit verify" },
};

export function registerCommand(name: string, run: Command, help: string, deadline?: Deadline): void {
  COMMANDS[name] = { run, help, deadline };
}

function helpText(): string {
  return [
    "usage: beamdeck <command> [options]",
    "",
    ...Object.values(COMMANDS).map((c) => `  beamdeck ${c.help}`),
    "",
    "Every command but `server` ends within a deadline (exit 6, saying what it waited for); --timeout DUR (30s, 5m, 1h) changes it.",
    "Environment: BEAMDECK_URL (server, default http://localhost:4000), BEAMDECK_API_TOKEN.",
  ].join("\n");
}

export async function main(argv: string[], env: Env = process.env): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    console.log(helpText());
    return name ? EXIT.ok : EXIT.usage;
  }
  try {
    const cmd = COMMANDS[name];
    if (!cmd) throw usage(`unknown command "${name}"`);
    const { argv: args, timeoutMs } = takeTimeout(rest);
    const deadline = (cmd.deadline ?? DEFAULT_DEADLINE)(args);
    // `server` runs until stopped: no --timeout for it.
    return await withDeadline(deadline === null ? null : (timeoutMs ?? deadline), () => cmd.run(args, env));
  } catch (e) {
    const err = e instanceof CliError ? e : new CliError((e as Error).message?.split("\n")[0] ?? String(e));
    console.error(`beamdeck: ${err.message}`);
    return err.exitCode;
  }
}
