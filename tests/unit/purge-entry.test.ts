import { describe, expect, it } from "vitest";
import { parsePurge } from "../../app/(dash)/rollouts/StartRollout";
import { parsePurgeEntry } from "../../app/_lib/purge";
import { parsePurgeArgs } from "../../server/cli/commands/upgrade";

const MODULES = ["Elixir.TestListener", "Elixir.Foo.Bar", "my_mod", "Elixir.Weird$Mod"];

describe("one purge syntax for the CLI and the Rollouts page", () => {
  it("reads Module=soft|brutal, the appup's _purge spelling, and spaces around the name", () => {
    expect(parsePurgeEntry("TestListener=soft")).toEqual({ module: "TestListener", purge: "soft" });
    expect(parsePurgeEntry(" my_mod =brutal_purge")).toEqual({ module: "my_mod", purge: "brutal" });
    for (const bad of ["TestListener", "=soft", " =soft", "M=hard", "M=soft_purgex", "M=soft=brutal"]) expect(parsePurgeEntry(bad)).toBeNull();
  });

  it("the page accepts exactly the entries the CLI accepts, with the same choice", () => {
    for (const entry of ["TestListener=soft", "Foo.Bar=brutal", "my_mod=soft_purge", "Weird$Mod=brutal_purge", "M=hard", "=soft", "no_choice"]) {
      let cli: string | null;
      try {
        cli = JSON.stringify(Object.values(parsePurgeArgs([entry], "--purge", MODULES)));
      } catch {
        cli = null;
      }
      const page = parsePurge(entry);
      expect({ entry, page: page.ok ? JSON.stringify(Object.values(page.purge)) : null }).toEqual({ entry, page: cli });
    }
    expect(parsePurge("A=soft, B=brutal_purge")).toEqual({ ok: true, purge: { A: "soft", B: "brutal" } });
    expect(parsePurge("A=soft, B=hard")).toEqual({ ok: false, message: '"B=hard" is not Module=soft or Module=brutal' });
  });
});
