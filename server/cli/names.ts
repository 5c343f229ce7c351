/** Erlang names in the terminal as the dashboard shows them (app/_lib/format.ts decides). */
import { elixirAlias, mfaText } from "../../app/_lib/format";

/** "Elixir.RelTest.Supervisor" (or its quoted atom text) → "RelTest.Supervisor"; other names unchanged. */
export function moduleName(name: string): string {
  const bare = /^'(.*)'$/.exec(name)?.[1] ?? name;
  return elixirAlias(bare) ?? name;
}

/** "Elixir.TestListener:loop/1" → "TestListener.loop/1"; Erlang MFAs unchanged. */
export function mfaName(mfa: string): string {
  return mfaText(mfa.replace(/^'(Elixir\.[^']*)':/, "$1:"));
}
