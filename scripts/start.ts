/**
 * The main job: `beamdeck init` if needed, the server (dashboard + agents +
 * API) on the embedded database, and the demo node — the forum's rel_test
 * 0.1.0 with TCP clients connected and 0.1.1 pending — with its own agent
 * token. Prints where to browse and how to log in. Ctrl-C stops everything.
 * `--no-demo` runs the server alone. With BEAMDECK_DEV=1 (`npm run dev`) the
 * dashboard runs in Next.js development mode: no `next build`, edits reload.
 */
import fs from "node:fs";
import path from "node:path";
import { agentTokenStillValid, createAgentToken } from "../server/auth/agent-tokens";
import { init, INITIAL_ADMIN_FILE } from "../server/cli/commands/init";
import { startServer } from "../server/gateway/start";
import { openDatabase } from "../server/storage/db";
import { dataDir } from "../server/storage/database-url";
import { startDemo, type Demo } from "../tools/beam/demo";
import { stopAll } from "../tools/beam/nodes";

const DEMO_TOKEN_FILE = "demo-agent-token";

/** The demo node's agent token: kept in the data dir, made anew if missing or revoked. */
async function demoAgentToken(env: NodeJS.ProcessEnv): Promise<string> {
  const file = path.join(dataDir(env), DEMO_TOKEN_FILE);
  const db = await openDatabase("start", env);
  try {
    const saved = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "";
    const id = /^bdagt_([a-z2-9]{10})_/.exec(saved)?.[1];
    if (id && (await agentTokenStillValid(db.prisma, id))) return saved;
    const t = await createAgentToken(db.prisma, { label: "demo node rel_test", createdBy: "npm start" });
    fs.writeFileSync(file, `${t.token}\n`, { mode: 0o600 });
    return t.token;
  } finally {
    await db.close();
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const withDemo = !process.argv.includes("--no-demo");
  const port = Number(env.PORT ?? 4000);
  const host = env.HOST ?? "0.0.0.0";

  console.log("== beamdeck: initialising");
  const code = await init([], env);
  if (code !== 0) process.exit(code);
  const agentToken = withDemo ? await demoAgentToken(env) : "";

  // `npm run dev` sets BEAMDECK_DEV=1: Next.js compiles pages on request and reloads them on change.
  const server = await startServer({ port, host, web: true, dev: env.BEAMDECK_DEV === "1" });
  let demo: Demo | null = null;
  const stop = async () => {
    console.log("\n== beamdeck: stopping");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await demo?.stop().catch(() => {});
    await stopAll().catch(() => {});
    await server.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());

  if (withDemo) {
    console.log("== beamdeck: building and starting the demo node (rel_test 0.1.0, the forum's app)");
    demo = await startDemo({ serverUrl: `ws://127.0.0.1:${server.port}/agent`, agentToken, dataDir: dataDir(env) });
    console.log(`   node ${demo.node.name}: rel_test listening on port ${demo.port}, 3 TCP clients chatting; 0.1.1 and 0.1.2 are pending upgrades`);
  }
  const creds = path.join(dataDir(env), INITIAL_ADMIN_FILE);
  console.log("");
  console.log(`== beamdeck is running: ${server.url}`);
  console.log(`   log in as the admin from ${fs.existsSync(creds) ? creds : "`beamdeck init` (printed above on the first run)"}`);
  if (withDemo && demo) console.log(`   open the node ${demo.node.name}, then its Upgrade tab, to preview 0.1.0 → 0.1.1`);
  console.log(`   agents connect to ws://${new URL(server.url).host}/agent; the CLI uses BEAMDECK_URL=${server.url} and the API token from the same file`);
  console.log("   Ctrl-C stops the server and the demo node");
}

main().catch(async (e) => {
  console.error(`beamdeck: ${(e as Error).message}`);
  await stopAll().catch(() => {});
  process.exit(1);
});
