/**
 * The demo node behind `npm start`: the forum's rel_test app as a real
 * release with the agent in it, three TCP clients chatting with it, and
 * 0.1.1 and 0.1.2 waiting as release packages for beamdeck to offer.
 *
 * @module
 */
import crypto from "node:crypto";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { startNode, type BeamNode } from "./nodes";
import { buildRelease, instantiate, type Release } from "./releases";
import { clients, freePort, waitForPort, type ClientEvent, type ClientPool } from "./tcp";

export interface DemoOptions {
  /** The agent's endpoint (BEAMDECK_URL), e.g. ws://127.0.0.1:4000/agent. */
  serverUrl: string;
  /** The demo node's own agent token (BEAMDECK_TOKEN). */
  agentToken: string;
  /** BEAMDECK_DATA_DIR; the node lives in DATA_DIR/demo/rel_test. */
  dataDir: string;
  /** rel_test's listen port; default a free one (kept across restarts while free). */
  port?: number;
  /** Start again from a fresh 0.1.0, dropping upgrades done earlier. */
  reset?: boolean;
  /** Number of chatting TCP clients; default 3. */
  clientCount?: number;
  onClientEvent?: (e: ClientEvent) => void;
}

export interface Demo {
  node: BeamNode;
  port: number;
  release: Release;
  /** True when this start made a fresh instance (first run, reset, or new build). */
  fresh: boolean;
  clients: ClientPool;
  stop(): Promise<void>;
}

interface InstanceInfo {
  /** Hash of the build the instance was copied from. */
  hash: string;
  cookie: string;
  port: number;
  createdAt: string;
}

const INFO_FILE = "beamdeck-demo.json";

/**
 * Starts (or restarts) the demo node. An existing instance is kept across
 * restarts, with any upgrade done through beamdeck, as long as it was
 * copied from the same build; when the sources changed (the app, the
 * agent, OTP) or `reset` is set, it is replaced by a fresh 0.1.0 with 0.1.1
 * and 0.1.2 pending: an instance from an older build would run an older
 * agent.
 */
export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const release = await buildRelease("rel_test");
  const dir = path.join(path.resolve(opts.dataDir), "demo", "rel_test");
  const infoPath = path.join(dir, INFO_FILE);
  let info = await readInfo(infoPath);
  const fresh = opts.reset === true || info === null || info.hash !== release.hash;
  if (fresh) {
    await fs.rm(dir, { recursive: true, force: true });
    await instantiate(release.templateDir, dir);
    info = {
      hash: release.hash,
      cookie: `bd_${crypto.randomBytes(12).toString("hex")}`,
      port: 0,
      createdAt: new Date().toISOString(),
    };
  }
  const current = info as InstanceInfo;
  const port = opts.port ?? (current.port && (await isFree(current.port)) ? current.port : await freePort());
  await fs.writeFile(infoPath, `${JSON.stringify({ ...current, port }, null, 2)}\n`);

  // A stable node name: the agent token is bound to the first node that uses it.
  const node = await startNode({
    release: "rel_test",
    dir,
    sname: "rel_test",
    cookie: current.cookie,
    env: { BEAMDECK_URL: opts.serverUrl, BEAMDECK_TOKEN: opts.agentToken, REL_TEST_PORT: String(port) },
  });
  try {
    await waitForPort(port, 10_000);
  } catch (err) {
    await node.stop();
    throw err;
  }
  const pool = clients(port, opts.clientCount ?? 3, { onEvent: opts.onClientEvent });
  return {
    node,
    port,
    release,
    fresh,
    clients: pool,
    async stop() {
      pool.stop();
      await node.stop();
    },
  };
}

async function readInfo(file: string): Promise<InstanceInfo | null> {
  try {
    const v = JSON.parse(await fs.readFile(file, "utf8")) as Partial<InstanceInfo>;
    if (typeof v.hash !== "string" || typeof v.cookie !== "string") return null;
    return { hash: v.hash, cookie: v.cookie, port: typeof v.port === "number" ? v.port : 0, createdAt: v.createdAt ?? "" };
  } catch {
    return null;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}
