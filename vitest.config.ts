import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // Above the CLI helper's own limit per call (tests/support/server.ts, 120 s),
    // so a hung CLI is killed and named before the test times out; still able
    // to fire (no test spawns synchronously), unlike before issue 18.
    testTimeout: 180_000,
    // A server, a release build and a node per file or test: minutes on a loaded machine.
    hookTimeout: 300_000,
    // Integration suites start real BEAM nodes and servers: one file at a time
    // keeps a 2-core machine from timing itself out.
    fileParallelism: false,
    pool: "forks",
  },
});
