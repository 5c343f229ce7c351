/**
 * The data directory holds password hashes, sessions, webhook secrets, the
 * audit log and the secret key: only the user running beamdeck may read it.
 *
 * `process.umask(0o077)` is set before anything (PGlite included) creates a
 * file, so new files are 0600 and new directories 0700. What an older version
 * or a careless copy left readable is repaired at start, loudly (decisions.md:
 * "refuse or repair" — we repair, and refuse only what we cannot repair).
 */
import fs from "node:fs";
import path from "node:path";

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;
// A data dir with more entries than this is not ours to walk (a wrong BEAMDECK_DATA_DIR).
const MAX_ENTRIES = 200_000;

export class DataDirModeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataDirModeError";
  }
}

export interface ModeReport {
  checked: number;
  repaired: string[];
}

/** Restrict the process's umask so every file it creates is private. */
export function restrictUmask(): void {
  process.umask(0o077);
}

/**
 * Make `dir` 0700 and everything under it 0700 (directories) or 0600 (files);
 * returns what was repaired. Throws DataDirModeError when a mode cannot be
 * fixed (owned by someone else), naming the path.
 */
export function secureDataDir(dir: string): ModeReport {
  restrictUmask();
  fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const report: ModeReport = { checked: 0, repaired: [] };
  const stack = [dir];
  while (stack.length > 0) {
    const p = stack.pop() as string;
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) continue; // its target's mode is not ours to change
    report.checked += 1;
    if (report.checked > MAX_ENTRIES) throw new DataDirModeError(`${dir} holds more than ${MAX_ENTRIES} entries: is BEAMDECK_DATA_DIR right?`);
    const want = st.isDirectory() ? DIR_MODE : FILE_MODE;
    if ((st.mode & 0o077) !== 0) {
      try {
        fs.chmodSync(p, (st.mode & 0o700) | (st.isDirectory() ? DIR_MODE : 0) | (want & 0o600));
      } catch (e) {
        throw new DataDirModeError(`${p} is readable by other users (mode ${(st.mode & 0o777).toString(8)}) and cannot be repaired: ${(e as Error).message}`);
      }
      report.repaired.push(p);
    }
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) stack.push(path.join(p, name));
  }
  return report;
}

/** secureDataDir, saying on stderr what it repaired. */
export function secureDataDirLoudly(dir: string): ModeReport {
  const report = secureDataDir(dir);
  if (report.repaired.length > 0) {
    const shown = report.repaired.slice(0, 5).join(", ");
    console.error(
      `[beamdeck] WARNING: ${report.repaired.length} of ${report.checked} entries in the data directory ${dir} were readable or writable by other users; ` +
        `repaired to 0700 (directories) / 0600 (files): ${shown}${report.repaired.length > 5 ? ", …" : ""}`,
    );
  }
  return report;
}
