/** Private webhook targets (item 14) and Slack escaping, on real sockets. */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alertPayload, slackEscape } from "../../server/alerts/webhooks";
import { postJson, privateRange } from "../../server/alerts/webhook-targets";

describe("privateRange", () => {
  it("names loopback, link-local, RFC 1918, ::1, fc00::/7 and mapped addresses; public ones pass", () => {
    for (const [ip, why] of [
      ["127.0.0.1", /loopback/],
      ["169.254.169.254", /link-local/],
      ["10.0.0.1", /RFC 1918/],
      ["172.16.5.4", /RFC 1918/],
      ["192.168.1.1", /RFC 1918/],
      ["0.0.0.0", /this host/],
      ["::1", /loopback/],
      ["fd12:3456::1", /fc00::\/7/],
      ["fe80::1", /link-local/],
      ["::ffff:127.0.0.1", /loopback/],
    ] as const) {
      expect(privateRange(ip), ip).toMatch(why);
    }
    for (const ip of ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "1.1.1.1"]) expect(privateRange(ip), ip).toBeNull();
  });
});

describe("postJson", () => {
  let receiver: http.Server;
  let port = 0;
  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    port = (receiver.address() as AddressInfo).port;
  });
  afterAll(() => receiver?.close());

  it("refuses a loopback target by address and by name (after DNS) unless allowed", async () => {
    await expect(postJson(`http://127.0.0.1:${port}/h`, {}, "{}", { timeoutMs: 5000, allowPrivate: false })).rejects.toThrow(/127\.0\.0\.1 is a loopback address/);
    await expect(postJson(`http://localhost:${port}/h`, {}, "{}", { timeoutMs: 5000, allowPrivate: false })).rejects.toThrow(/webhook target localhost \((127\.0\.0\.1|::1)\) is a loopback address/);
    expect(await postJson(`http://127.0.0.1:${port}/h`, {}, "{}", { timeoutMs: 5000, allowPrivate: true })).toEqual({ status: 204 });
  });
});

describe("Slack escaping", () => {
  it("escapes agent-supplied text so <!channel> and <url|label> show as written", () => {
    expect(slackEscape("<!channel> & <https://evil.example|click>")).toBe("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;");
    const alert = { id: "a1", kind: "node_down", node: "n<!here>@h", title: "<!channel> down", status: "open", count: 1, firstAt: new Date(0), lastAt: new Date(0), detail: {} };
    const text = alertPayload(alert as never, "http://bd.example").text;
    expect(text).not.toMatch(/<!/);
    expect(text).toContain("&lt;!channel&gt; down (node n&lt;!here&gt;@h)");
  });
});
