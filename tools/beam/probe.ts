/**
 * Client for tools/beam/probe.erl: one long-lived hidden Erlang node per
 * epmd port that evaluates expressions on target nodes over distributed
 * Erlang. Tests use it to look at a node directly (message queues, which
 * processes died, supervisor children), never through the agent.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { HOST_OTP, onOtp, type OtpTarget } from "./otp";
import { onProcessExit } from "./proc";

const PROBE_SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), "probe.erl");
const START_TIMEOUT_MS = 15_000;

export type ProbeMode = "text" | "json";

/** A failed evaluation: parse error, exception, timeout or no connection. */
export class RpcError extends Error {
  constructor(
    message: string,
    readonly node: string,
    readonly expr: string,
  ) {
    super(`${node}: ${message}\n  in: ${expr.length > 200 ? `${expr.slice(0, 200)}…` : expr}`);
    this.name = "RpcError";
  }
}

interface Reply {
  id: number | null;
  ok: boolean;
  text?: string;
  json?: unknown;
  error?: string;
}

export class Probe {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private exitError: Error | null = null;
  private readonly cancelExitHook: () => void;

  private constructor(
    private readonly child: ChildProcess,
    /** The probe's own node name, `beamdeck_probe_…@HOST`. */
    readonly node: string,
    lines: readline.Interface,
  ) {
    lines.on("line", (line) => this.onLine(line));
    child.on("exit", (code) => {
      this.exitError = new Error(`probe node exited (${code})`);
      for (const p of this.pending.values()) p.reject(this.exitError);
      this.pending.clear();
    });
    this.cancelExitHook = onProcessExit(() => child.kill("SIGKILL"));
  }

  /** The host part that `-sname` nodes on this machine get. */
  get host(): string {
    return this.node.slice(this.node.indexOf("@") + 1);
  }

  /**
   * Starts a probe that finds nodes through epmd on `epmdPort`. It runs on
   * `otp`, the nodes' own OTP: distribution between releases more than two
   * apart (25 and 29) is not promised.
   */
  static async start(epmdPort: number, otp: OtpTarget = HOST_OTP): Promise<Probe> {
    const sname = `beamdeck_probe_${process.pid}_${crypto.randomBytes(3).toString("hex")}`;
    const escript = onOtp(otp, "escript", [PROBE_SRC, sname]);
    const child = spawn(escript.cmd, escript.args, {
      // The epmd is the harness's; the probe must not start another one.
      env: { ...process.env, ERL_EPMD_PORT: String(epmdPort), ERL_FLAGS: "-start_epmd false" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const lines = readline.createInterface({ input: child.stdout! });
    const node = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`probe did not start in ${START_TIMEOUT_MS} ms: ${stderr}`));
      }, START_TIMEOUT_MS);
      lines.once("line", (line) => {
        clearTimeout(timer);
        try {
          const msg = JSON.parse(line) as { ready?: boolean; node?: string };
          if (msg.ready && msg.node) resolve(msg.node);
          else reject(new Error(`probe: unexpected first line ${line}`));
        } catch {
          reject(new Error(`probe: unexpected first line ${line}`));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`probe exited (${code}) before it was ready: ${stderr}`));
      });
    });
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    return new Probe(child, node, lines);
  }

  private onLine(line: string): void {
    let reply: Reply;
    try {
      reply = JSON.parse(line) as Reply;
    } catch {
      return;
    }
    if (reply.id === null) return;
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    p.resolve(reply);
  }

  /**
   * Evaluates `expr` on `node` (cookie `cookie`). Resolves with the value
   * printed by the node (`text`) or converted to JSON (`json`); rejects with
   * an RpcError when the expression fails, times out or the node is down.
   */
  async eval(node: string, cookie: string, mode: ProbeMode, expr: string, timeoutMs = 10_000): Promise<unknown> {
    if (this.exitError) throw this.exitError;
    if (!/^[A-Za-z0-9_@.-]+$/.test(node) || !/^[A-Za-z0-9_.-]+$/.test(cookie)) {
      throw new Error(`probe: unsupported node name or cookie: ${node}`);
    }
    const id = this.nextId++;
    const b64 = Buffer.from(expr, "utf8").toString("base64");
    const reply = await new Promise<Reply>((resolve, reject) => {
      // The probe enforces timeoutMs itself; this guard only covers a stuck probe.
      const guard = setTimeout(() => {
        this.pending.delete(id);
        reject(new RpcError(`probe gave no answer in ${timeoutMs + 5000} ms`, node, expr));
      }, timeoutMs + 5000);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(guard);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(guard);
          reject(e);
        },
      });
      this.child.stdin!.write(`${id} ${timeoutMs} ${mode} ${node} ${cookie} ${b64}\n`);
    });
    if (!reply.ok) throw new RpcError(reply.error ?? "failed", node, expr);
    return mode === "text" ? (reply.text ?? "") : reply.json;
  }

  /** Closes the probe's stdin (it halts) and resolves when it has exited. */
  async stop(): Promise<void> {
    this.cancelExitHook();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2000);
    await gone;
    clearTimeout(timer);
  }
}

const probes = new Map<string, Promise<Probe>>();

/** One probe per epmd port and OTP for this process, started on first use. */
export function sharedProbe(epmdPort: number, otp: OtpTarget = HOST_OTP): Promise<Probe> {
  const key = `${epmdPort}|${otp.label}`;
  let p = probes.get(key);
  if (!p) {
    p = Probe.start(epmdPort, otp).catch((err: unknown) => {
      probes.delete(key);
      throw err;
    });
    probes.set(key, p);
  }
  return p;
}

/** Stops every probe this process started. */
export async function stopProbes(): Promise<void> {
  const all = [...probes.values()];
  probes.clear();
  await Promise.all(all.map(async (p) => (await p.catch(() => null))?.stop()));
}
