/**
 * One process at a time opens the embedded database: a lock file beside it.
 * A lock left by a dead process is taken over; a live holder is named in the
 * error so the user knows to go through the running server instead.
 */
import fs from "node:fs";
import path from "node:path";

export class DatabaseBusyError extends Error {
  constructor(
    readonly lockFile: string,
    readonly holder: { pid: number; role: string; since: string },
    role: string,
  ) {
    super(
      `the embedded database is in use by a running beamdeck ${holder.role} (pid ${holder.pid}, since ${holder.since}); ` +
        (role === "server"
          ? // A second instance: the embedded database serves one process; several instances share PostgreSQL.
            `the embedded database serves one server instance: stop that one, or run several instances on PostgreSQL (DATABASE_URL, docs/scale-out.md)`
          : `stop it, or run this command through the server (set BEAMDECK_URL and BEAMDECK_API_TOKEN)`),
    );
    this.name = "DatabaseBusyError";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function readLock(lockFile: string): { pid: number; role: string; since: string } | null {
  try {
    const held = JSON.parse(fs.readFileSync(lockFile, "utf8")) as { pid: number; role: string; since: string };
    return typeof held.pid === "number" && alive(held.pid) ? held : null;
  } catch {
    return null;
  }
}

/** Take the lock or throw DatabaseBusyError; returns a release function. */
export function acquireLock(dir: string, role: string): () => void {
  fs.mkdirSync(dir, { recursive: true });
  const lockFile = path.join(dir, "beamdeck.lock");
  const body = JSON.stringify({ pid: process.pid, role, since: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      fs.writeFileSync(lockFile, body, { flag: "wx" });
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        try {
          const held = JSON.parse(fs.readFileSync(lockFile, "utf8")) as { pid: number };
          if (held.pid === process.pid) fs.unlinkSync(lockFile);
        } catch {
          /* already gone */
        }
      };
      process.once("exit", release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = readLock(lockFile);
      if (holder && holder.pid !== process.pid) throw new DatabaseBusyError(lockFile, holder, role);
      fs.rmSync(lockFile, { force: true }); // stale: its process is gone
    }
  }
  throw new Error(`could not take the database lock ${lockFile}`);
}
