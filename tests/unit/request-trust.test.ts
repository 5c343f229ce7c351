/**
 * What the server believes about a request (issue 10, items 3, 4, 18):
 * where it comes from (Origin, Sec-Fetch-Site), the client's address and
 * whether it used TLS — proxy headers only when the proxy is trusted, and
 * then only the proxy's own hop.
 */
import type { IncomingMessage } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { clientIp, requestIsHttps } from "../../server/gateway/proxy";
import { crossSiteReason } from "../../server/gateway/same-origin";

function req(headers: Record<string, string>, remoteAddress = "10.0.0.5", encrypted = false): IncomingMessage {
  return { headers, socket: { remoteAddress, encrypted } } as unknown as IncomingMessage;
}
const TRUST = { BEAMDECK_TRUST_PROXY: "1" };

afterEach(() => {
  delete process.env.BEAMDECK_TRUST_PROXY;
});

describe("client address", () => {
  it("is the socket's peer unless the proxy is trusted", () => {
    expect(clientIp(req({ "x-forwarded-for": "1.2.3.4" }), {})).toBe("10.0.0.5");
  });
  it("behind a trusted proxy is the last X-Forwarded-For hop, never the client-written ones", () => {
    expect(clientIp(req({ "x-forwarded-for": "6.6.6.6, 203.0.113.9" }), TRUST)).toBe("203.0.113.9");
    expect(clientIp(req({ "x-forwarded-for": "6.6.6.6,7.7.7.7 ,203.0.113.9" }), TRUST)).toBe("203.0.113.9");
    expect(clientIp(req({}), TRUST)).toBe("10.0.0.5");
  });
});

describe("TLS", () => {
  it("ignores X-Forwarded-Proto unless the proxy is trusted", () => {
    expect(requestIsHttps(req({ "x-forwarded-proto": "https" }), {})).toBe(false);
    expect(requestIsHttps(req({ "x-forwarded-proto": "https" }), TRUST)).toBe(true);
    expect(requestIsHttps(req({ "x-forwarded-proto": "http" }), TRUST)).toBe(false);
    expect(requestIsHttps(req({}, "10.0.0.5", true), {})).toBe(true);
  });
});

describe("cross-site refusal", () => {
  const host = { host: "127.0.0.1:4000" };
  it("lets the server's own origin and header-less clients through", () => {
    expect(crossSiteReason(req({ ...host, origin: "http://127.0.0.1:4000" }), null)).toBeNull();
    expect(crossSiteReason(req({ ...host, origin: "http://127.0.0.1:4000", "sec-fetch-site": "same-origin" }), null)).toBeNull();
    expect(crossSiteReason(req(host), null)).toBeNull();
    expect(crossSiteReason(req({ host: "10.0.0.1:4000", origin: "https://beamdeck.example" }), "https://beamdeck.example")).toBeNull();
  });
  it.each([
    ["another port of the same host", { origin: "http://127.0.0.1:4001" }],
    ["another host", { origin: "http://evil.example" }],
    ["an opaque origin", { origin: "null" }],
    ["a same-site fetch", { origin: "http://127.0.0.1:4000", "sec-fetch-site": "same-site" }],
    ["a cross-site fetch without Origin", { "sec-fetch-site": "cross-site" }],
    ["a non-web scheme", { origin: "chrome-extension://abc" }],
  ])("refuses %s", (_what, headers) => {
    expect(crossSiteReason(req({ ...host, ...headers }), null)).toMatch(/^cross-site request refused/);
  });
  it("trusts X-Forwarded-Host only behind a trusted proxy", () => {
    const r = req({ host: "127.0.0.1:4000", origin: "https://beamdeck.example", "x-forwarded-host": "beamdeck.example" });
    expect(crossSiteReason(r, null)).toMatch(/refused/);
    process.env.BEAMDECK_TRUST_PROXY = "1";
    expect(crossSiteReason(r, null)).toBeNull();
  });
});
