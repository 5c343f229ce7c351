/**
 * Every tRPC procedure against every role, over HTTP and over the WebSocket
 * link. The list of procedures comes from the router itself, so a new
 * procedure is covered the day it is added.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appRouter } from "../../server/routers/_app";
import type { Role } from "../../server/auth/roles";
import { startServer, type TestServer } from "../support/server";
import { httpClient, loginCookie, wsClient, type Credentials } from "../support/trpc-clients";
import { codeOf } from "../support/calls";

type Proc = { path: string; type: "query" | "mutation" | "subscription"; role: Role | "public" };
const PROCEDURES: Proc[] = Object.entries((appRouter as unknown as { _def: { procedures: Record<string, { _def: { type: Proc["type"]; meta?: { role?: Proc["role"] } } }> } })._def.procedures).map(
  ([path, p]) => ({ path, type: p._def.type, role: p._def.meta?.role ?? ("missing" as never) }),
);
const RANK = { public: -1, viewer: 0, operator: 1, admin: 2 } as const;

let server: TestServer;
const creds: Record<Role, Credentials> = { viewer: null, operator: null, admin: null };

beforeAll(async () => {
  server = await startServer();
  const admin = httpClient(server.url, { token: server.apiToken });
  await admin.users.add.mutate({ username: "vera", role: "viewer", password: "viewer-password-1" });
  creds.viewer = { cookie: await loginCookie(server.url, "vera", "viewer-password-1") };
  creds.operator = { token: (await admin.tokens.apiCreate.mutate({ label: "op", role: "operator" })).token };
  creds.admin = { token: server.apiToken };
});
afterAll(async () => {
  await server?.stop();
});

function invoke(client: ReturnType<typeof httpClient>, p: Proc): Promise<unknown> {
  const node = p.path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], client) as Record<string, (i: unknown, o?: unknown) => Promise<unknown>>;
  if (p.type === "query") return node.query({});
  if (p.type === "mutation") return node.mutate({});
  return new Promise((resolve, reject) => {
    const sub = (node as unknown as { subscribe: (i: unknown, o: object) => { unsubscribe(): void } }).subscribe(
      {},
      {
        onStarted: () => setTimeout(() => (sub.unsubscribe(), resolve("started")), 300),
        onData: () => (sub.unsubscribe(), resolve("data")),
        onError: (e: unknown) => reject(e),
      },
    );
  });
}

describe("authorization", () => {
  it("every procedure declares its least role", () => {
    expect(PROCEDURES.length).toBeGreaterThan(10);
    for (const p of PROCEDURES) expect(["public", "viewer", "operator", "admin"], p.path).toContain(p.role);
  });

  it("anonymous callers get nothing but the login procedure (HTTP)", async () => {
    const anon = httpClient(server.url, null);
    for (const p of PROCEDURES.filter((p) => p.type !== "subscription")) {
      const code = await codeOf(() => invoke(anon, p));
      if (p.role === "public") expect(code, p.path).not.toBe("UNAUTHORIZED");
      else expect(code, p.path).toBe("UNAUTHORIZED");
    }
  });

  it("anonymous callers get nothing over the WebSocket either", async () => {
    const { trpc, close } = wsClient(server.url, null);
    try {
      for (const p of PROCEDURES.filter((p) => p.role !== "public")) {
        expect(await codeOf(() => invoke(trpc as never, p)), p.path).toBe("UNAUTHORIZED");
      }
    } finally {
      close();
    }
  });

  for (const role of ["viewer", "operator"] as const) {
    for (const transport of ["http", "ws"] as const) {
      it(`a ${role} is refused every procedure above its role, over ${transport}, and it is audited`, async () => {
        const c = transport === "http" ? { trpc: httpClient(server.url, creds[role]), close: () => {} } : wsClient(server.url, creds[role]);
        try {
          const above = PROCEDURES.filter((p) => p.role !== "public" && RANK[p.role] > RANK[role]);
          expect(above.length).toBeGreaterThan(0);
          for (const p of above) expect(await codeOf(() => invoke(c.trpc as never, p)), p.path).toBe("FORBIDDEN");
          // Queries at or below the role are let through (they may still fail validation).
          for (const p of PROCEDURES.filter((p) => p.type === "query" && p.role !== "public" && RANK[p.role] <= RANK[role])) {
            const code = await codeOf(() => invoke(c.trpc as never, p));
            expect(["FORBIDDEN", "UNAUTHORIZED"], p.path).not.toContain(code);
          }
        } finally {
          c.close();
        }
      });
    }
  }

  it("denials are written to the audit log with who and what", async () => {
    const r = await server.cli(["agent-token", "list", "--json"], { BEAMDECK_API_TOKEN: (creds.operator as { token: string }).token });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tokens\.agentList needs the admin role; you are operator/);
    const admin = httpClient(server.url, { token: server.apiToken });
    const { entries } = await admin.audit.list.query({ action: "access.denied", limit: 500 });
    const byViewer = entries.filter((e) => e.actor === "user:vera");
    const byOperator = entries.filter((e) => e.actor.startsWith("token:") && e.actor.endsWith("(op)"));
    // Both transports of the viewer test were denied every operator/admin procedure.
    const aboveViewer = PROCEDURES.filter((p) => p.role === "operator" || p.role === "admin").length;
    expect(byViewer.length).toBe(2 * aboveViewer);
    expect(byOperator.some((e) => e.target === "tokens.agentList" && e.outcome === "denied")).toBe(true);
    expect(byViewer[0].data).toMatchObject({ role: "viewer" });
    expect((await admin.audit.verify.query()).ok).toBe(true);
  });

  it("closes open WebSocket subscriptions when their token is revoked or their session ends", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    const t = await admin.tokens.apiCreate.mutate({ label: "ws", role: "viewer" });
    const closedToken = new Promise<number | undefined>((resolve) => {
      const c = wsClient(server.url, { token: t.token }, (cause) => resolve(cause?.code));
      c.trpc.nodes.onNodes.subscribe(undefined, { onData: () => {} });
    });
    await admin.users.add.mutate({ username: "wendy", role: "viewer", password: "wendy-password-1" });
    const cookie = await loginCookie(server.url, "wendy", "wendy-password-1");
    const closedSession = new Promise<number | undefined>((resolve) => {
      const c = wsClient(server.url, { cookie }, (cause) => resolve(cause?.code));
      c.trpc.nodes.onNodes.subscribe(undefined, { onData: () => {} });
    });
    await new Promise((r) => setTimeout(r, 500));
    await admin.tokens.apiRevoke.mutate({ id: t.id });
    expect(await closedToken).toBe(4401);
    await httpClient(server.url, { cookie }).auth.logoutEverywhere.mutate();
    expect(await closedSession).toBe(4401);
  });

  it("a revoked or expired API token fails with a clear error", async () => {
    const admin = httpClient(server.url, { token: server.apiToken });
    const t = await admin.tokens.apiCreate.mutate({ label: "short", role: "viewer" });
    const expired = await admin.tokens.apiCreate.mutate({ label: "past", role: "viewer", expiresAt: new Date(Date.now() - 60_000).toISOString() });
    await admin.tokens.apiRevoke.mutate({ id: t.id });
    const revoked = await server.cli(["nodes"], { BEAMDECK_API_TOKEN: t.token });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/API token .* was revoked/);
    const old = await server.cli(["nodes"], { BEAMDECK_API_TOKEN: expired.token });
    expect(old.stderr).toMatch(/API token .* expired/);
  });
});
