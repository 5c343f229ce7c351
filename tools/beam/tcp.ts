/**
 * TCP helpers: free ports, and clients for rel_test's listener (the forum's
 * TestListener answers every packet it receives with one greeting line).
 *
 * @module
 */
import net from "node:net";

/** A TCP port that was free a moment ago (the OS picks it). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no port"))));
    });
  });
}

/** Resolves once something accepts connections on `port`, or rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000, host = "127.0.0.1"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One open connection to a rel_test listener. */
export class GreetingClient {
  private buffer = "";
  private waiters: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  private closedError: Error | null = null;
  /** Resolves when the connection ends (either side), with the reason if any. */
  readonly closed: Promise<Error | null>;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding("utf8");
    socket.setNoDelay(true);
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      for (;;) {
        const nl = this.buffer.indexOf("\n");
        if (nl < 0) break;
        const line = this.buffer.slice(0, nl + 1);
        this.buffer = this.buffer.slice(nl + 1);
        this.waiters.shift()?.resolve(line);
      }
    });
    this.closed = new Promise((resolve) => {
      const end = (err?: Error): void => {
        if (this.closedError) return;
        this.closedError = err ?? new Error("connection closed");
        for (const w of this.waiters.splice(0)) w.reject(this.closedError);
        resolve(err ?? null);
      };
      socket.on("error", (err) => end(err));
      socket.on("close", () => end());
      socket.on("end", () => end());
    });
  }

  /** Opens a connection to `port` and waits until it is established. */
  static connect(port: number, host = "127.0.0.1", timeoutMs = 5000): Promise<GreetingClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(new GreetingClient(socket));
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  get open(): boolean {
    return this.closedError === null;
  }

  /** Sends `line` and resolves with the next line the server sends (the greeting, with its "\n"). */
  hello(line = "hello", timeoutMs = 5000): Promise<string> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no greeting within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
      this.socket.write(`${line}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Connects, says hello once, and returns the greeting (connection closed after). */
export async function greet(port: number, host = "127.0.0.1"): Promise<string> {
  const c = await GreetingClient.connect(port, host);
  try {
    return await c.hello();
  } finally {
    c.close();
  }
}

export interface ClientEvent {
  client: number;
  kind: "connected" | "greeting" | "closed" | "error";
  detail: string;
  at: number;
}

export interface ClientPool {
  /** Per client: open or not, and the last greeting it got. */
  status(): Array<{ client: number; open: boolean; lastGreeting: string | null; greetings: number }>;
  stop(): void;
}

/**
 * Keeps `n` clients connected to `port`, each saying hello every
 * `intervalMs` (staggered). A client whose connection dies reconnects after
 * `reconnectMs`, so a demo shows both the killed connections and the new
 * greeting after an upgrade.
 */
export function clients(
  port: number,
  n: number,
  opts: { intervalMs?: number; reconnectMs?: number; host?: string; onEvent?: (e: ClientEvent) => void } = {},
): ClientPool {
  const intervalMs = opts.intervalMs ?? 3000;
  const reconnectMs = opts.reconnectMs ?? 2000;
  const host = opts.host ?? "127.0.0.1";
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const state = Array.from({ length: n }, (_, i) => ({
    client: i + 1,
    conn: null as GreetingClient | null,
    lastGreeting: null as string | null,
    greetings: 0,
  }));
  const emit = (client: number, kind: ClientEvent["kind"], detail: string): void =>
    opts.onEvent?.({ client, kind, detail, at: Date.now() });
  const later = (ms: number, fn: () => void): void => {
    if (stopped) return;
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopped) fn();
    }, ms);
    timers.add(t);
  };

  const run = (s: (typeof state)[number]): void => {
    GreetingClient.connect(port, host).then(
      (conn) => {
        if (stopped) return conn.close();
        s.conn = conn;
        emit(s.client, "connected", `${host}:${port}`);
        void conn.closed.then((err) => {
          s.conn = null;
          emit(s.client, "closed", err ? err.message : "closed");
          later(reconnectMs, () => run(s));
        });
        const chat = (): void => {
          if (!conn.open) return;
          conn.hello(`client ${s.client}`).then(
            (g) => {
              s.lastGreeting = g.trimEnd();
              s.greetings += 1;
              emit(s.client, "greeting", s.lastGreeting);
              later(intervalMs, chat);
            },
            () => conn.close(),
          );
        };
        chat();
      },
      (err: Error) => {
        emit(s.client, "error", err.message);
        later(reconnectMs, () => run(s));
      },
    );
  };
  state.forEach((s, i) => later(i * Math.floor(intervalMs / Math.max(n, 1)), () => run(s)));

  return {
    status: () => state.map((s) => ({ client: s.client, open: s.conn?.open ?? false, lastGreeting: s.lastGreeting, greetings: s.greetings })),
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of state) s.conn?.close();
    },
  };
}
