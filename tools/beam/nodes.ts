/**
 * BEAM nodes for tests and the demo, each running from its own copy of a
 * release's target system (see releases.ts), booted the way an operator
 * would: `bin/erl -boot releases/VSN/start -config releases/VSN/sys`.
 *
 * @module
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { sharedEpmd, stopSharedEpmd } from "./epmd";
import { onOtp, testOtp, type OtpTarget } from "./otp";
import { sharedProbe, stopProbes, type Probe } from "./probe";
import { spawnGuarded, type ExitInfo } from "./proc";
import { bootVersion } from "./releases";

export interface StartNodeOptions {
  /** Release name; only used for the default sname. */
  release?: string;
  /** The node's own target system (from instantiate()). */
  dir: string;
  /** Default: RELEASE_PID_RANDOM, unique. */
  sname?: string;
  /** Default: random. */
  cookie?: string;
  /**
   * OS environment for the node (BEAMDECK_URL, BEAMDECK_TOKEN, REL_TEST_PORT, …);
   * `undefined` removes a variable. BEAMDECK_* and REL_TEST_PORT are never
   * inherited from this process: a node's agent dials out only when told to.
   */
  env?: Record<string, string | undefined>;
  /** epmd to register with; default a private epmd shared by this process. */
  epmdPort?: number;
  /** Default DIR/log/SNAME.log (appended). */
  logFile?: string;
  /** How long to wait for init to report {started, started}; default 30 s. */
  bootTimeoutMs?: number;
  /** The OTP the node runs on (the one its release was built with); default testOtp(). */
  otp?: OtpTarget;
  /** More emulator flags, after the boot and config ones (a mix release's -boot_var RELEASE_LIB). */
  extraArgs?: string[];
}

export interface RpcOptions {
  /** Default 10 s. */
  timeoutMs?: number;
}

export interface BeamNode {
  /** sname@host */
  readonly name: string;
  readonly sname: string;
  readonly cookie: string;
  readonly dir: string;
  /** The release version it booted (releases/start_erl.data at start). */
  readonly bootVersion: string;
  readonly epmdPort: number;
  readonly logFile: string;
  /** Milliseconds from spawn to {started, started}. */
  readonly bootMs: number;
  /** erlang:system_info(otp_release) as the node reports it ("25", "27", "29"). */
  readonly otpRelease: string;
  /** Resolves when the node's OS process has exited. */
  readonly exited: Promise<ExitInfo>;
  alive(): boolean;
  /** Evaluates an Erlang expression on the node; resolves with the value as the node prints it (~0tp). */
  rpc(expr: string, opts?: RpcOptions): Promise<string>;
  /** Evaluates an Erlang expression on the node; resolves with the value as JSON (see probe.erl). */
  rpcJson<T = unknown>(expr: string, opts?: RpcOptions): Promise<T>;
  /** The last `lines` lines of the node's console log. */
  logTail(lines?: number): string;
  /** Stops the node (SIGTERM, then SIGKILL after `graceMs`; 0 kills at once) and everything it started. A graceful stop takes about 1 s. */
  stop(graceMs?: number): Promise<void>;
}

let counter = 0;
const running = new Set<BeamNode>();

/**
 * Stops every node this process started, then the probes and the shared
 * epmd (call it from afterAll or on demo shutdown; an exit hook kills what
 * is left anyway).
 */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((n) => n.stop()));
  await stopProbes();
  await stopSharedEpmd();
}

/** Boots the target system in `opts.dir` and resolves once its boot script has run. */
export async function startNode(opts: StartNodeOptions): Promise<BeamNode> {
  const dir = path.resolve(opts.dir);
  const vsn = await bootVersion(dir);
  const sname = opts.sname ?? `${opts.release ?? "node"}_${process.pid}_${++counter}_${crypto.randomBytes(2).toString("hex")}`;
  const cookie = opts.cookie ?? `bd_${crypto.randomBytes(12).toString("hex")}`;
  const epmdPort = opts.epmdPort ?? (await sharedEpmd()).port;
  const otp = opts.otp ?? testOtp();
  const probe: Probe = await sharedProbe(epmdPort, otp);
  const name = `${sname}@${probe.host}`;
  const logFile = opts.logFile ?? path.join(dir, "log", `${sname}.log`);
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const logFd = fs.openSync(logFile, "a");

  const rel = path.join(dir, "releases", vsn);
  const args = [
    "-boot", path.join(rel, "start"),
    "-config", path.join(rel, "sys"),
    "-sname", sname,
    "-setcookie", cookie,
    "-noshell", "-noinput",
    // The epmd on epmdPort is ours; a node must not start (and orphan) another.
    "-start_epmd", "false",
    ...(opts.extraArgs ?? []),
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, ERL_EPMD_PORT: String(epmdPort) };
  // A developer's ERL_FLAGS or ERL_LIBS must not change what the release runs.
  delete env.ERL_FLAGS;
  delete env.ERL_AFLAGS;
  delete env.ERL_ZFLAGS;
  delete env.ERL_LIBS;
  for (const k of Object.keys(env)) if (k.startsWith("BEAMDECK_") || k === "REL_TEST_PORT") delete env[k];
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const t0 = Date.now();
  const erl = onOtp(otp, path.join(dir, "bin", "erl"), args);
  const proc = spawnGuarded(erl.cmd, erl.args, { cwd: dir, env, stdout: logFd, stderr: logFd });
  fs.closeSync(logFd);

  const logTail = (lines = 40): string => {
    try {
      return fs.readFileSync(logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  };
  const rpcRaw = (mode: "text" | "json", expr: string, o?: RpcOptions): Promise<unknown> =>
    probe.eval(name, cookie, mode, expr, o?.timeoutMs ?? 10_000);

  // Wait for the boot script to finish (every application started).
  const deadline = t0 + (opts.bootTimeoutMs ?? 30_000);
  let lastError = "";
  let exitedEarly = false;
  void proc.exited.then(() => {
    exitedEarly = true;
  });
  for (;;) {
    if (exitedEarly) {
      throw new Error(`node ${name} exited during boot; log ${logFile}:\n${logTail()}`);
    }
    try {
      const status = (await rpcRaw("text", "init:get_status()", { timeoutMs: 2000 })) as string;
      if (status === "{started,started}") break;
      lastError = status;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      await proc.kill("SIGKILL", 0);
      throw new Error(`node ${name} did not boot in time (${lastError}); log ${logFile}:\n${logTail()}`);
    }
    await sleep(100);
  }
  const bootMs = Date.now() - t0;
  // A test meant for OTP 29 must never pass by running somewhere else.
  const otpRelease = JSON.parse((await rpcRaw("text", "erlang:system_info(otp_release)", { timeoutMs: 5000 })) as string) as string;
  if (otp.suite !== null && otpRelease !== String(otp.otp)) {
    await proc.kill("SIGKILL", 0);
    throw new Error(`node ${name} runs OTP ${otpRelease}, not the OTP ${otp.otp} of the ${otp.suite} chroot`);
  }

  const node: BeamNode = {
    name,
    sname,
    cookie,
    dir,
    bootVersion: vsn,
    epmdPort,
    logFile,
    bootMs,
    otpRelease,
    exited: proc.exited,
    alive: () => proc.alive(),
    rpc: (expr, o) => rpcRaw("text", expr, o) as Promise<string>,
    rpcJson: <T>(expr: string, o?: RpcOptions) => rpcRaw("json", expr, o) as Promise<T>,
    logTail,
    stop: async (graceMs = 5000) => {
      await proc.kill("SIGTERM", graceMs);
      running.delete(node);
    },
  };
  running.add(node);
  void proc.exited.then(() => running.delete(node));
  return node;
}
