/**
 * Where the login page may send the browser afterwards: a path on this
 * origin, nothing else. The raw `next` is resolved the way the browser
 * would resolve it (URL parsing drops tabs and newlines and reads `\` as
 * `/`, so "/\t/evil.example" becomes "//evil.example"); anything that does
 * not land on this origin, or lands on the login page again, becomes "/".
 */
export function safeNext(raw: string | null, origin: string): string {
  if (!raw || !raw.startsWith("/")) return "/";
  let url: URL;
  try {
    url = new URL(raw, origin);
  } catch {
    return "/";
  }
  if (url.origin !== new URL(origin).origin || url.pathname === "/login") return "/";
  // Rebuilt from the parsed parts, so what the browser follows is what was checked.
  return `${url.pathname}${url.search}${url.hash}`;
}
