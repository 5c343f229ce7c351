import { describe, expect, it } from "vitest";
import { worstExit } from "../../server/cli/commands/rollout";
import { EXIT } from "../../server/cli/errors";

describe("the exit code over several nodes", () => {
  it("is the worst verdict: blocked > error findings > would kill > safe", () => {
    expect(worstExit([EXIT.ok, EXIT.wouldKill, EXIT.errorFindings, EXIT.blocked])).toBe(EXIT.blocked);
    expect(worstExit([EXIT.wouldKill, EXIT.errorFindings, EXIT.ok])).toBe(EXIT.errorFindings);
    expect(worstExit([EXIT.ok, EXIT.wouldKill])).toBe(EXIT.wouldKill);
    expect(worstExit([EXIT.ok, EXIT.ok])).toBe(EXIT.ok);
    expect(worstExit([])).toBe(EXIT.ok);
  });
});
