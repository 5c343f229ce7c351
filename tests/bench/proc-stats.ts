/**
 * CPU time and resident memory of a process and its descendants, read from
 * /proc (Linux), for benches that measure a server from outside.
 */
import fs from "node:fs";

/** Linux's USER_HZ: /proc's clock ticks per second (fixed at 100 on every architecture Linux exports it for). */
const TICKS_PER_S = 100;

export interface ProcSample {
  at: number;
  /** CPU seconds (user + system) used so far. */
  cpuS: number;
  rssBytes: number;
}

function stat(pid: number): { ppid: number; ticks: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): state ppid … utime(14) stime(15).
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function rss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** `pid` and every process below it. */
function tree(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const s = stat(Number(e));
    if (s) parent.set(Number(e), s.ppid);
  }
  const out = [pid];
  for (let i = 0; i < out.length; i += 1) for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  return out;
}

export function sample(pid: number): ProcSample {
  let ticks = 0;
  let bytes = 0;
  for (const p of tree(pid)) {
    ticks += stat(p)?.ticks ?? 0;
    bytes += rss(p);
  }
  return { at: performance.now(), cpuS: ticks / TICKS_PER_S, rssBytes: bytes };
}

/** Share of one core used between two samples, in percent. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  return (100 * (b.cpuS - a.cpuS)) / ((b.at - a.at) / 1000);
}
