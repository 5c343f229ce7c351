/**
 * The login page's `next`: only same-origin paths (issue 10, item 16). Each
 * answer is resolved as the browser resolves it, so a value that passes a
 * prefix check but lands elsewhere ("/%09/host") is caught.
 */
import { describe, expect, it } from "vitest";
import { safeNext } from "../../app/_lib/safe-next";

const ORIGIN = "http://127.0.0.1:4000";
const landsOn = (next: string) => new URL(next, ORIGIN);

describe("safeNext", () => {
  it("keeps local paths with their query and fragment", () => {
    expect(safeNext("/nodes/a%40b/processes?sort=memory#top", ORIGIN)).toBe("/nodes/a%40b/processes?sort=memory#top");
    expect(safeNext("/", ORIGIN)).toBe("/");
  });

  it.each([
    "/\t/evil.example/path", // the reported one: ?next=/%09/host/path
    "/\n/evil.example",
    "/\r\n/evil.example",
    "//evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "/%5C/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    " /evil",
  ])("never leaves the origin for %j", (raw) => {
    const next = safeNext(raw, ORIGIN);
    expect(landsOn(next).origin).toBe(ORIGIN);
    expect(landsOn(next).host).toBe("127.0.0.1:4000");
  });

  it("does not loop back to the login page, and falls back to / without next", () => {
    expect(safeNext("/login?next=/x", ORIGIN)).toBe("/");
    expect(safeNext(null, ORIGIN)).toBe("/");
    expect(safeNext("", ORIGIN)).toBe("/");
  });
});
