/**
 * The e2e suite runs the production build (`next build` output in .next/),
 * as `beamdeck server` serves it. This rebuilds it when the app changed.
 *
 * @module
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { ROOT } from "../support/server";

const run = promisify(execFile);

/** Newest modification time under `p` (files only), skipping build output. */
function newestMtime(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const e of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, e)));
  return newest;
}

/** What a build depends on: the app, Next's config and the installed packages. */
function sourcesMtime(): number {
  return Math.max(newestMtime(path.join(ROOT, "app")), newestMtime(path.join(ROOT, "next.config.js")), newestMtime(path.join(ROOT, "package-lock.json")));
}

function buildMtime(): number {
  return newestMtime(path.join(ROOT, ".next", "BUILD_ID"));
}

/**
 * Runs `next build` unless .next/BUILD_ID is newer than every source it
 * depends on. A lock directory keeps two test files from building at once.
 */
export async function ensureNextBuild(): Promise<void> {
  if (buildMtime() > sourcesMtime()) return;
  const lock = path.join(os.tmpdir(), `beamdeck-next-build-${Buffer.from(ROOT).toString("hex").slice(-16)}.lock`);
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      // Someone else builds; a lock older than 5 minutes is left over from a crash.
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 300_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`waited 5 minutes for ${lock}`);
      await sleep(500);
    }
  }
  try {
    if (buildMtime() > sourcesMtime()) return; // built while we waited
    await run("npx", ["next", "build"], { cwd: ROOT, env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" }, maxBuffer: 64 * 1024 * 1024 }).catch(
      (e: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`next build failed: ${e.message}\n${(e.stdout ?? "").slice(-4000)}\n${(e.stderr ?? "").slice(-4000)}`);
      },
    );
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}
