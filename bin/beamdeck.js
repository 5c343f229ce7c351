#!/usr/bin/env node
// The beamdeck CLI. Commands run from the compiled bundle (dist/cli/main.mjs,
// made by scripts/setup.sh) when it is newer than every source it is built
// from; otherwise, and always for `beamdeck server`, from the TypeScript
// sources through tsx's loader.
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const bundle = path.join(root, "dist/cli/main.mjs");

/** Newest modification time under `dir` (files and directories: a deleted file changes its directory). */
function newest(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? Math.max(fs.statSync(p).mtimeMs, newest(p)) : fs.statSync(p).mtimeMs);
  }
  return t;
}

function bundleIsFresh() {
  try {
    const built = fs.statSync(bundle).mtimeMs;
    // app/_lib: the CLI prints names with the dashboard's formatters (server/cli/names.ts).
    return ["server", "generated", "app/_lib"].every((d) => newest(path.join(root, d)) < built);
  } catch {
    return false;
  }
}

const argv = process.argv.slice(2);
let main;
if (argv[0] !== "server" && process.env.BEAMDECK_CLI_FROM_SOURCE !== "1" && bundleIsFresh()) {
  ({ main } = await import(bundle));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../server/cli/main.ts"));
}
const code = await main(argv);
// The work is done: exit now, whatever sockets or timers are still open,
// once what was printed has been handed to the OS.
const flushed = (stream) => new Promise((resolve) => stream.write("", resolve));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
