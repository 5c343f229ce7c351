/** A real rel_test (or bd_counter) node with the agent pointed at a test server. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startNode, stopAll, type BeamNode } from "../../tools/beam/nodes";
import { buildRelease, instantiate, type ReleaseName } from "../../tools/beam/releases";
import { freePort, waitFor } from "./ports";
import { startServer, type TestServer } from "./server";

export async function startAgentNode(
  server: TestServer,
  opts: { release?: ReleaseName; token?: string; env?: Record<string, string>; sname?: string } = {},
): Promise<{ node: BeamNode; token: string; dir: string }> {
  const release = opts.release ?? "rel_test";
  const token = opts.token ?? (await server.agentToken(`node ${Date.now()}`));
  const built = await buildRelease(release);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `beamdeck-${release}-`));
  await instantiate(built.templateDir, dir);
  const node = await startNode({
    release,
    dir,
    sname: opts.sname,
    env: { BEAMDECK_URL: server.agentUrl, BEAMDECK_TOKEN: token, REL_TEST_PORT: "0", ...opts.env },
  });
  return { node, token, dir };
}

/** Wait until the server lists the node as connected (through the CLI, as a user would). */
export async function waitConnected(server: TestServer, name: string, connected = true, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    `${name} ${connected ? "connected" : "disconnected"}`,
    async () => {
      const r = await server.cli(["nodes", "--json"], {}, { timeoutMs: Math.max(1000, timeoutMs) });
      if (r.code !== 0) return false;
      return (JSON.parse(r.stdout) as { name: string; connected: boolean }[]).some((n) => n.name === name && n.connected === connected);
    },
    timeoutMs,
    300,
  );
}

/**
 * A fresh server and one connected rel_test node listening on a free port:
 * what the live-view tests start in `beforeAll` (stop with stopServerAndNodes).
 */
export async function startServerAndNode(connectTimeoutMs = 20_000): Promise<{ server: TestServer; node: BeamNode; listenPort: number }> {
  const server = await startServer();
  const listenPort = await freePort();
  const { node } = await startAgentNode(server, { env: { REL_TEST_PORT: String(listenPort) } });
  await waitConnected(server, node.name, true, connectTimeoutMs);
  return { server, node, listenPort };
}

/** Every node this test file started, then its server (`afterAll`). */
export async function stopServerAndNodes(server: TestServer | undefined): Promise<void> {
  await stopAll();
  await server?.stop();
}
