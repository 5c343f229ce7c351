import { describe, expect, it } from "vitest";
import { internalListenerOptions, listenerUrl } from "../../server/gateway/internal-listener";

describe("BEAMDECK_INTERNAL_PORT / BEAMDECK_INTERNAL_HOST", () => {
  it("unset: no listener of its own (the public port serves the internal route)", () => {
    expect(internalListenerOptions({}, "0.0.0.0")).toBeNull();
    expect(internalListenerOptions({ BEAMDECK_INTERNAL_PORT: "" }, "0.0.0.0")).toBeNull();
  });
  it("a port, on the public host unless a host is named", () => {
    expect(internalListenerOptions({ BEAMDECK_INTERNAL_PORT: "4100" }, "0.0.0.0")).toEqual({ port: 4100, host: "0.0.0.0" });
    expect(internalListenerOptions({ BEAMDECK_INTERNAL_PORT: "4100", BEAMDECK_INTERNAL_HOST: "10.0.0.5" }, "0.0.0.0")).toEqual({ port: 4100, host: "10.0.0.5" });
  });
  it("refuses what is not a port, and a host without a port, naming the setting", () => {
    for (const bad of ["0", "65536", "41a", "-1", "4.1"]) expect(() => internalListenerOptions({ BEAMDECK_INTERNAL_PORT: bad }, "h"), bad).toThrow(/^BEAMDECK_INTERNAL_PORT must be a port number/);
    expect(() => internalListenerOptions({ BEAMDECK_INTERNAL_HOST: "10.0.0.5" }, "h")).toThrow("BEAMDECK_INTERNAL_HOST is set without BEAMDECK_INTERNAL_PORT");
  });
  it("advertises the listening address, this host's name for every address, IPv6 in brackets", () => {
    expect(listenerUrl("127.0.0.1", 4100)).toBe("http://127.0.0.1:4100");
    expect(listenerUrl("::1", 4100)).toBe("http://[::1]:4100");
    expect(listenerUrl("0.0.0.0", 4100)).toMatch(/^http:\/\/[^/:]+:4100$/);
  });
});
