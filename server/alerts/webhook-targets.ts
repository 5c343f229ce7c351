/**
 * Where a webhook may be delivered (issue 10, item 14). A webhook target on
 * loopback, link-local (169.254.169.254: cloud metadata) or a private
 * network turns delivery results into a port scanner of the server's own
 * network, so private targets are refused unless an admin allows them
 * (setting `webhooks.allowPrivateTargets`, off by default). The check runs on
 * the URL when a webhook is added and on every address the name resolves to
 * at delivery time, inside the connection's own lookup (no DNS rebinding gap).
 */
import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";

/** Why an address is private, or null when it is public. */
export function privateRange(address: string): string | null {
  const ip = address.replace(/^\[|\]$/g, "").toLowerCase();
  if (net.isIPv4(ip)) {
    const [a, b] = ip.split(".").map(Number);
    if (a === 127) return "loopback";
    if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return "private network (RFC 1918)";
    if (a === 169 && b === 254) return "link-local (cloud metadata)";
    if (a === 0) return "this host (0.0.0.0/8)";
    if (a === 100 && b >= 64 && b <= 127) return "shared address space (100.64.0.0/10)";
    if (a >= 224) return "multicast or reserved";
    return null;
  }
  if (net.isIPv6(ip)) {
    if (ip === "::1" || ip === "::") return "loopback";
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
    if (mapped) return privateRange(mapped[1]);
    const first = Number.parseInt(ip.split(":")[0] || "0", 16);
    if ((first & 0xfe00) === 0xfc00) return "unique local (fc00::/7)";
    if ((first & 0xffc0) === 0xfe80) return "link-local (fe80::/10)";
    if ((first & 0xff00) === 0xff00) return "multicast";
    return null;
  }
  return "not an IP address";
}

export class PrivateTargetError extends Error {
  constructor(host: string, address: string, why: string) {
    super(
      `webhook target ${host}${host === address ? "" : ` (${address})`} is a ${why} address; private targets are refused ` +
        "unless an admin allows them (alerts.setWebhookSettings allowPrivateTargets, or the Webhooks page)",
    );
    this.name = "PrivateTargetError";
  }
}

/** Resolve `url`'s host and refuse it when any address is private. */
export async function checkTarget(url: string): Promise<void> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  const addresses = net.isIP(host) ? [host] : (await dns.promises.lookup(host, { all: true })).map((a) => a.address);
  for (const a of addresses) {
    const why = privateRange(a);
    if (why) throw new PrivateTargetError(host, a, why);
  }
}

/** A `lookup` for http.request that refuses private addresses as it connects. */
function guardedLookup(hostname: string, options: dns.LookupOptions, callback: (err: Error | null, address: string | dns.LookupAddress[], family?: number) => void): void {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, "");
    for (const a of addresses) {
      const why = privateRange(a.address);
      if (why) return callback(new PrivateTargetError(hostname, a.address, why), "");
    }
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
}

export interface PostResult {
  status: number;
}

/** POST `body` to `url` (no redirects followed), refusing private targets unless allowed. */
export async function postJson(url: string, headers: Record<string, string>, body: string, opts: { timeoutMs: number; allowPrivate: boolean }): Promise<PostResult> {
  const u = new URL(url);
  // An IP literal never reaches `lookup`: check it here.
  if (!opts.allowPrivate && net.isIP(u.hostname.replace(/^\[|\]$/g, ""))) await checkTarget(url);
  const lib = u.protocol === "https:" ? https : http;
  return new Promise<PostResult>((resolve, reject) => {
    const req = lib.request(
      u,
      {
        method: "POST",
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        timeout: opts.timeoutMs,
        ...(opts.allowPrivate ? {} : { lookup: guardedLookup as unknown as net.LookupFunction }),
      },
      (res) => {
        res.resume(); // the answer's body is not kept
        res.on("end", () => resolve({ status: res.statusCode ?? 0 }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer within ${opts.timeoutMs} ms`), { name: "TimeoutError" })));
    req.on("error", reject);
    req.end(body);
  });
}
