import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Integration suites start real BEAM nodes and servers: one file at a time
    // keeps a 2-core machine from timing itself out.
    fileParallelism: false,
    pool: "forks",
  },
});
