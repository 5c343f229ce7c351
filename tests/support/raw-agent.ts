/**
 * A protocol-level agent client for gateway tests (bad tokens, malformed
 * frames). BEAM behaviour is always tested with real nodes; this only speaks
 * the wire protocol, to test how the server treats what it receives.
 */
import WebSocket from "ws";

export interface RawAgent {
  ws: WebSocket;
  received: Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
  hello(extra?: Record<string, unknown>): Promise<Record<string, unknown>>;
  next(type: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  close(): void;
}

export function helloFrame(node: string, extra: Record<string, unknown> = {}) {
  return {
    type: "hello",
    protocol: 1,
    node,
    bootId: "b0075eed".repeat(4),
    agentVersion: "test",
    otpRelease: "25",
    ertsVersion: "13.1.5",
    processCount: 1,
    applications: [],
    releases: null,
    capabilities: ["procs"],
    lastEventSeq: 0,
    ...extra,
  };
}

/** Connect; resolves with the HTTP refusal instead when the upgrade is refused. */
export function connectRaw(url: string, token: string | null, node: string): Promise<RawAgent | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { "x-beamdeck-node": node };
    if (token) headers.authorization = `Bearer ${token}`;
    // Bounded: a server that never answers the upgrade fails the test, naming it.
    const ws = new WebSocket(url, { headers, handshakeTimeout: 15_000 });
    const received: Record<string, unknown>[] = [];
    const waiters: { type: string; resolve(f: Record<string, unknown>): void }[] = [];
    ws.on("message", (d) => {
      const f = JSON.parse(d.toString()) as Record<string, unknown>;
      received.push(f);
      const i = waiters.findIndex((w) => w.type === f.type);
      if (i >= 0) waiters.splice(i, 1)[0].resolve(f);
    });
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on("error", (e) => reject(e));
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on("close", (code, reason) => r({ code, reason: reason.toString() })));
    ws.on("open", () => {
      const agent: RawAgent = {
        ws,
        received,
        closed,
        send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
        async hello(extra = {}) {
          agent.send(helloFrame(node, extra));
          return agent.next("welcome");
        },
        next(type, timeoutMs = 5000) {
          const have = received.find((f) => f.type === type);
          if (have) {
            received.splice(received.indexOf(have), 1);
            return Promise.resolve(have);
          }
          return new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error(`no ${type} frame within ${timeoutMs} ms`)), timeoutMs);
            waiters.push({
              type,
              resolve: (f) => {
                clearTimeout(t);
                received.splice(received.indexOf(f), 1);
                res(f);
              },
            });
          });
        },
        close: () => ws.close(),
      };
      resolve(agent);
    });
  });
}

export function isRefusal(x: RawAgent | { status: number; body: string }): x is { status: number; body: string } {
  return "status" in x;
}
