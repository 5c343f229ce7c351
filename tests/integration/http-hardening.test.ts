/**
 * The HTTP/WebSocket layer under attack (issue 10, items 3, 4, 6, 7, 11, 18),
 * against real servers: one reached directly, one told it sits behind a
 * proxy (BEAMDECK_TRUST_PROXY=1). The browser side of item 3 (a page on
 * another port, in Chromium) is tests/e2e/cross-origin.test.ts.
 */
import http from "node:http";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { MAX_BATCH_CALLS, MAX_WS_MESSAGE_CALLS } from "../../server/gateway/limits";
import { startServer, type TestServer } from "../support/server";
import { startSyntheticAgent, type SyntheticAgent } from "../support/synthetic-agent";
import { httpClient, loginCookie, wsClient } from "../support/trpc-clients";

let direct: TestServer;
let proxied: TestServer;
let agent: SyntheticAgent | null = null;

beforeAll(async () => {
  // One after the other: two cold starts at once time out on a busy 2-core machine.
  direct = await startServer();
  proxied = await startServer({ env: { BEAMDECK_TRUST_PROXY: "1" } });
  const users: [TestServer, string[]][] = [
    [direct, ["bob", "carol", "dave"]],
    [proxied, ["erin", "frank", "olga"]],
  ];
  for (const [s, names] of users) {
    for (const username of names) await httpClient(s.url, { token: s.apiToken }).users.add.mutate({ username, role: "operator", password: `${username}-password-1` });
  }
}, 400_000);
afterAll(async () => {
  await agent?.disconnect();
  await Promise.all([direct?.stop(), proxied?.stop()]);
});

type Answer = { result?: unknown; error?: { message: string; data?: { code?: string; httpStatus?: number } } };
const codeOf = (a: Answer) => (a.error ? (a.error.data?.code ?? "?") : "OK");
const count = (codes: string[], code: string) => codes.filter((c) => c === code).length;

/** One HTTP request carrying `inputs.length` login calls. */
async function loginBatch(s: TestServer, inputs: { username: string; password: string }[], headers: Record<string, string> = {}): Promise<Answer[]> {
  const paths = inputs.map(() => "auth.login").join(",");
  const body = JSON.stringify(Object.fromEntries(inputs.map((v, i) => [String(i), v])));
  const r = await fetch(`${s.url}/api/trpc/${paths}?batch=1`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  return (await r.json()) as Answer[];
}

/** One login per request. */
async function loginOnce(s: TestServer, username: string, password: string, headers: Record<string, string> = {}): Promise<{ status: number; answer: Answer; setCookie: string }> {
  const r = await fetch(`${s.url}/api/trpc/auth.login`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ username, password }) });
  return { status: r.status, answer: (await r.json()) as Answer, setCookie: r.headers.get("set-cookie") ?? "" };
}

/**
 * How long /healthz takes while `during` runs: probed every 20 ms from a
 * worker thread, so this process's own work (writing 64 MB bodies) does not
 * delay the probes. On this shared 2-core machine (load 20-30 while the
 * team's suites run) an idle process already sees ~50 ms hiccups and single
 * probes reached 410 ms, so the bounds are relative to the same probes with
 * nothing running (quietHealthz, measured in the same run): the median within
 * max(100 ms, 5× the quiet median), the worst within max(WORST_HEALTHZ_MS,
 * 3× the quiet worst); the code before the fixes held the loop for seconds
 * (16 synchronous full scans and a regex-per-comparison sort).
 */
const WORST_HEALTHZ_MS = 500;
async function healthzBounds(s: TestServer): Promise<{ median: number; worst: number }> {
  const quiet = await healthzWhile(s, new Promise((r) => setTimeout(r, 1500)));
  return { median: Math.max(100, 5 * quiet.medianMs), worst: Math.max(WORST_HEALTHZ_MS, 3 * quiet.worstMs) };
}
async function healthzWhile<T>(s: TestServer, during: Promise<T>): Promise<{ result: T; worstMs: number; medianMs: number; probes: number }> {
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     let stop = false; const times = [];
     parentPort.on("message", () => { stop = true; });
     (async () => {
       while (!stop) {
         const t0 = performance.now();
         const r = await fetch(workerData + "/healthz"); await r.text();
         times.push(performance.now() - t0);
         await new Promise((res) => setTimeout(res, 20));
       }
       parentPort.postMessage(times);
     })();`,
    { eval: true, workerData: s.url },
  );
  const times = new Promise<number[]>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  try {
    const result = await during;
    worker.postMessage("stop");
    const t = (await times).sort((a, b) => a - b);
    return { result, worstMs: t[t.length - 1] ?? Number.POSITIVE_INFINITY, medianMs: t[Math.floor(t.length / 2)] ?? Number.POSITIVE_INFINITY, probes: t.length };
  } finally {
    await worker.terminate();
  }
}

describe("item 4: at most 5 password checks per account and address, whatever the transport", () => {
  it("one batch: five checks, the rest refused, and the right password afterwards too", async () => {
    const answers = await loginBatch(
      direct,
      Array.from({ length: MAX_BATCH_CALLS }, (_, i) => ({ username: "bob", password: `guess-${i}` })),
    );
    const codes = answers.map(codeOf);
    expect(count(codes, "UNAUTHORIZED"), codes.join()).toBe(5);
    expect(count(codes, "TOO_MANY_REQUESTS"), codes.join()).toBe(MAX_BATCH_CALLS - 5);
    const after = await loginOnce(direct, "bob", "bob-password-1");
    expect(after.status).toBe(429);
    expect(after.setCookie).toBe("");
  });

  it("parallel requests: five checks", async () => {
    const all = await Promise.all(Array.from({ length: 30 }, (_, i) => loginOnce(direct, "carol", `guess-${i}`)));
    const codes = all.map((a) => codeOf(a.answer));
    expect(count(codes, "UNAUTHORIZED"), codes.join()).toBe(5);
    expect(count(codes, "TOO_MANY_REQUESTS"), codes.join()).toBe(25);
  });

  it("over the WebSocket: five checks", async () => {
    const { trpc, close } = wsClient(direct.url, null);
    try {
      const codes = await Promise.all(
        // wsLink sends what is queued in one tick as one message: 30 calls, one message.
        Array.from({ length: 30 }, (_, i) =>
          trpc.auth.login.mutate({ username: "dave", password: `guess-${i}` }).then(
            () => "OK",
            (e: { data?: { code?: string } }) => e.data?.code ?? "?",
          ),
        ),
      );
      expect(count(codes, "UNAUTHORIZED"), codes.join()).toBe(5);
      expect(count(codes, "TOO_MANY_REQUESTS"), codes.join()).toBe(25);
    } finally {
      close();
    }
  });

  it("refuses a batch larger than the cap", async () => {
    const inputs = Array.from({ length: 100 }, () => ({ username: "nobody-at-all", password: "x" }));
    const body = JSON.stringify(Object.fromEntries(inputs.map((v, i) => [String(i), v])));
    const { result } = await healthzWhile(
      direct,
      fetch(`${direct.url}/api/trpc/${inputs.map(() => "auth.login").join(",")}?batch=1`, { method: "POST", headers: { "content-type": "application/json" }, body }),
    );
    expect(result.status).toBe(400);
    expect(await result.text()).toMatch(/Batch call exceeds maximum size/);
    // Nothing was checked: the address has not used up its logins.
    expect((await loginOnce(direct, "nobody-at-all", "x")).answer.error?.message).toBe("wrong username or password");
  });

  it("closes a WebSocket whose one message carries more calls than the cap", async () => {
    const ws = new WebSocket(`${direct.url.replace(/^http/, "ws")}/api/trpc-ws`);
    await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
    const replies: unknown[] = [];
    ws.on("message", (m) => replies.push(JSON.parse(String(m))));
    const calls = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ id: from + i, method: "query", params: { path: "auth.me", input: {} } }));
    ws.send(JSON.stringify(calls(2, 1)));
    await expect.poll(() => replies.length, { timeout: 10_000 }).toBe(2);
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.send(JSON.stringify(calls(MAX_WS_MESSAGE_CALLS + 1, 10)));
    expect(await closed).toBe(1008);
    expect(replies).toHaveLength(2);
  });

  it("behind a proxy, only the proxy's own X-Forwarded-For hop counts, and is what the audit records", async () => {
    const codes: string[] = [];
    for (let i = 0; i < 8; i += 1) {
      // The client writes whatever it likes on the left; the proxy appends the address it saw.
      const r = await loginOnce(proxied, "erin", `guess-${i}`, { "x-forwarded-for": `10.9.${i}.${i}, 203.0.113.9` });
      codes.push(codeOf(r.answer));
    }
    expect(codes).toEqual(["UNAUTHORIZED", "UNAUTHORIZED", "UNAUTHORIZED", "UNAUTHORIZED", "UNAUTHORIZED", "TOO_MANY_REQUESTS", "TOO_MANY_REQUESTS", "TOO_MANY_REQUESTS"]);
    const audit = await httpClient(proxied.url, { token: proxied.apiToken }).audit.list.query({ actor: "user:erin", action: "auth.login" });
    expect(audit.entries).toHaveLength(8);
    for (const e of audit.entries) expect((e.data as { ip?: string }).ip).toBe("203.0.113.9");
  });
});

describe("item 11: no user enumeration, no lock-out anyone can trigger", () => {
  it("answers an unknown user exactly as a real one, attempt by attempt", async () => {
    const run = async (username: string, hop: string) => {
      const out: string[] = [];
      for (let i = 0; i < 7; i += 1) {
        const r = await loginOnce(proxied, username, `wrong-${i}`, { "x-forwarded-for": hop });
        out.push(`${r.status} ${codeOf(r.answer)} ${r.answer.error?.message.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, "<time>")}`);
      }
      return out;
    };
    const real = await run("frank", "198.51.100.1");
    const ghost = await run("no-such-user", "198.51.100.2");
    expect(ghost).toEqual(real);
    expect(real[0]).toBe("401 UNAUTHORIZED wrong username or password");
    expect(real[6]).toBe("429 TOO_MANY_REQUESTS too many failed logins for this account from this address; try again after <time>");
    expect(real.join("\n")).not.toMatch(/locked for|now locked/);
  });

  it("failures from one address do not lock the owner out at theirs; elsewhere the delay is seconds to minutes, not a lock", async () => {
    const owner = { "x-forwarded-for": "192.0.2.50" };
    expect((await loginOnce(proxied, "olga", "olga-password-1", owner)).status).toBe(200);
    // An attacker on many addresses: five free failures, then a delay that doubles with each further one.
    const retryAt = (a: Answer) => Date.parse(/\d{4}-\d\d-\d\dT[\d:.]+Z/.exec(a.error?.message ?? "")?.[0] ?? "");
    let delayed: Answer | null = null;
    for (let i = 0; i < 20 && !(delayed && retryAt(delayed) - Date.now() > 3000); i += 1) {
      const r = await loginOnce(proxied, "olga", `attack-${i}`, { "x-forwarded-for": `198.51.100.${100 + i}` });
      if (r.status === 429) delayed = r.answer;
    }
    expect(delayed?.error?.message).toMatch(/^repeated failed logins for this account; next attempt allowed after \d{4}-\d\d-\d\dT[\d:.]+Z$/);
    // The owner's address has logged in before: no wait at all.
    const back = await loginOnce(proxied, "olga", "olga-password-1", owner);
    expect(back.status, JSON.stringify(back.answer)).toBe(200);
    // Attack again; a new address must wait the account's delay — seconds, at most 5 minutes — and then gets in.
    delayed = null;
    for (let i = 0; i < 20 && !(delayed && retryAt(delayed) - Date.now() > 3000); i += 1) {
      const r = await loginOnce(proxied, "olga", `attack-${i}`, { "x-forwarded-for": `198.51.101.${100 + i}` });
      if (r.status === 429) delayed = r.answer;
    }
    const fresh = { "x-forwarded-for": "192.0.2.77" };
    const early = await loginOnce(proxied, "olga", "olga-password-1", fresh);
    expect(early.status).toBe(429);
    const at = retryAt(early.answer);
    expect(at - Date.now()).toBeLessThanOrEqual(5 * 60_000);
    await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now()) + 100));
    expect((await loginOnce(proxied, "olga", "olga-password-1", fresh)).status).toBe(200);
  }, 180_000);
});

describe("item 18: Secure cookies and X-Forwarded-Proto", () => {
  it("ignores X-Forwarded-Proto unless the proxy is trusted", async () => {
    const untrusted = await loginOnce(direct, "admin", direct.adminPassword, { "x-forwarded-proto": "https" });
    expect(untrusted.status).toBe(200);
    expect(untrusted.setCookie).toMatch(/beamdeck_session=/);
    expect(untrusted.setCookie).not.toMatch(/;\s*Secure/i);
  });

  it("sets Secure when the trusted proxy says the client spoke https, and only then", async () => {
    const hop = { "x-forwarded-for": "192.0.2.200" };
    const tls = await loginOnce(proxied, "admin", proxied.adminPassword, { ...hop, "x-forwarded-proto": "https" });
    expect(tls.setCookie).toMatch(/;\s*Secure/i);
    const plain = await loginOnce(proxied, "admin", proxied.adminPassword, hop);
    expect(plain.setCookie).toMatch(/beamdeck_session=/);
    expect(plain.setCookie).not.toMatch(/;\s*Secure/i);
  });
});

describe("item 3: the cookie is not usable from another origin (raw requests; Chromium in tests/e2e)", () => {
  let cookie: string;
  beforeAll(async () => {
    cookie = await loginCookie(direct.url, "admin", direct.adminPassword);
  });

  /** Open the tRPC WebSocket; resolves with the upgrade's HTTP status (101 when it opened). */
  function upgrade(headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${direct.url.replace(/^http/, "ws")}/api/trpc-ws`, { headers });
      ws.once("open", () => (ws.close(), resolve(101)));
      ws.once("unexpected-response", (_req, res) => (res.resume(), resolve(res.statusCode ?? 0)));
      ws.once("error", reject);
    });
  }

  it("refuses a cookie-carrying WebSocket upgrade from another origin", async () => {
    const other = `http://127.0.0.1:${direct.port + 1}`;
    expect(await upgrade({ cookie, origin: other })).toBe(403);
    expect(await upgrade({ cookie, origin: "null" })).toBe(403);
    expect(await upgrade({ cookie, origin: direct.url, "sec-fetch-site": "same-site" })).toBe(403);
    // The dashboard's own page, and the CLI (no Origin), still get in.
    expect(await upgrade({ cookie, origin: direct.url })).toBe(101);
    expect(await upgrade({})).toBe(101);
  });

  it("refuses a form POST from another origin and leaves the session alone", async () => {
    const form = new FormData();
    form.set("x", "1");
    const r = await fetch(`${direct.url}/api/trpc/auth.logoutEverywhere`, { method: "POST", headers: { cookie, origin: `http://127.0.0.1:${direct.port + 1}` }, body: form });
    expect(r.status).toBe(403);
    expect(await httpClient(direct.url, { cookie }).auth.me.query()).toMatchObject({ kind: "user", name: "admin" });
    const site = await fetch(`${direct.url}/api/trpc/auth.logoutEverywhere`, { method: "POST", headers: { cookie, "sec-fetch-site": "cross-site", "content-type": "application/json" }, body: "{}" });
    expect(site.status).toBe(403);
    expect(await httpClient(direct.url, { cookie }).auth.me.query()).toMatchObject({ kind: "user" });
  });

  it("lets bearer-token callers in whatever Origin they send", async () => {
    const r = await fetch(`${direct.url}/api/trpc/auth.me`, { headers: { authorization: `Bearer ${direct.apiToken}`, origin: "http://elsewhere.example" } });
    expect(r.status).toBe(200);
    const m = await fetch(`${direct.url}/api/trpc/auth.logout`, {
      method: "POST",
      headers: { authorization: `Bearer ${direct.apiToken}`, origin: "http://elsewhere.example", "content-type": "application/json" },
      body: "{}",
    });
    expect(m.status).toBe(200);
  });
});

describe("item 6: request bodies are limited while streaming", () => {
  /** POST `totalBytes` in 1 MiB chunks; stops sending when the answer arrives. */
  function bigPost(s: TestServer, totalBytes: number, announce: boolean): Promise<{ status: number; sentBytes: number }> {
    return new Promise((resolve, reject) => {
      let sent = 0;
      let answered = false;
      const req = http.request(`${s.url}/api/trpc/auth.login`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(announce ? { "content-length": String(totalBytes) } : {}) },
      });
      req.on("response", (res) => {
        answered = true;
        res.resume();
        resolve({ status: res.statusCode ?? 0, sentBytes: sent });
        req.destroy();
      });
      // The server may close while we still write; its answer can still be on its way.
      req.on("error", (e) => (answered ? undefined : setTimeout(() => (answered ? undefined : reject(e)), 3000)));
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      const pump = () => {
        while (!answered && sent < totalBytes) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        if (!answered) req.end();
      };
      pump();
    });
  }

  it("answers 413 to a 64 MB body before reading it, announced or not, with /healthz still quick", async () => {
    const bounds = await healthzBounds(direct);
    const { result, worstMs, medianMs } = await healthzWhile(direct, Promise.all([bigPost(direct, 64 * 1024 * 1024, true), bigPost(direct, 64 * 1024 * 1024, false)]));
    const [announced, chunked] = result;
    expect(announced.status).toBe(413);
    expect(chunked.status).toBe(413);
    expect(announced.sentBytes).toBeLessThan(64 * 1024 * 1024);
    expect(chunked.sentBytes).toBeLessThan(64 * 1024 * 1024);
    expect(medianMs).toBeLessThan(bounds.median);
    expect(worstMs).toBeLessThan(bounds.worst);
  });
});

describe("item 7: one request cannot hold the server", () => {
  it("keeps /healthz quick while a full batch of filtered windows runs on a big node", async () => {
    const admin = httpClient(direct.url, { token: direct.apiToken });
    const token = await direct.agentToken("synth");
    agent = await startSyntheticAgent({ url: direct.agentUrl, token, node: "synth@bigbox", processCount: 100_000, intervalMs: 0 });
    await expect.poll(async () => (await admin.procs.window.query({ node: "synth@bigbox", limit: 1 })).total, { timeout: 150_000, interval: 500 }).toBe(100_000);
    const inputs = Object.fromEntries(Array.from({ length: MAX_BATCH_CALLS }, (_, i) => [String(i), { node: "synth@bigbox", sort: "pid", filter: `no-match-${i}`, limit: 100 }]));
    const url = `${direct.url}/api/trpc/${Array(MAX_BATCH_CALLS).fill("procs.window").join(",")}?batch=1&input=${encodeURIComponent(JSON.stringify(inputs))}`;
    const bounds = await healthzBounds(direct);
    const { result, worstMs, medianMs, probes } = await healthzWhile(
      direct,
      fetch(url, { headers: { authorization: `Bearer ${direct.apiToken}` } }).then((r) => r.json() as Promise<Answer[]>),
    );
    expect(result.map(codeOf)).toEqual(Array(MAX_BATCH_CALLS).fill("OK"));
    expect(probes).toBeGreaterThan(0);
    expect(medianMs).toBeLessThan(bounds.median);
    expect(worstMs).toBeLessThan(bounds.worst);
    // The agent stayed connected through it.
    expect((await admin.procs.window.query({ node: "synth@bigbox", limit: 1 })).connected).toBe(true);
  }, 240_000);
});
