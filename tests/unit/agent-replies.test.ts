/**
 * Every agent reply is parsed by its method's schema (server/agents/replies.ts):
 * what the agent sends is typed, a reply that does not match is a clear,
 * catalogued error naming the field, never a cast or a crash.
 */
import { assert, describe, expect, it } from "vitest";
import { agentFailure } from "../../server/agents/agent-failure";
import { parseReply, REPLIES } from "../../server/agents/replies";
import { AgentRequestError } from "../../server/agents/session";
import { releaseRows } from "../../server/cli/commands/upgrade";
import { BeamdeckError } from "../../server/errors";

/** A `releases` reply as beamdeck_agent_release:state/1 builds it (0.1.1 unpacked, 0.1.2 only a package). */
const releases = {
  handler: true,
  stale: false,
  releasesDir: "/srv/rel_test/releases",
  rootDir: "/srv/rel_test",
  name: "rel_test",
  current: "0.1.0",
  permanent: "0.1.0",
  releases: [
    { name: "rel_test", vsn: "0.1.1", status: "unpacked", apps: ["rel_test-0.1.1"] },
    { name: "rel_test", vsn: "0.1.0", status: "permanent", apps: ["rel_test-0.1.0"] },
  ],
  packages: [
    { file: "rel_test-0.1.1.tar.gz", package: "rel_test-0.1.1", vsn: "0.1.1", size: 1000, modifiedAt: 1, unpacked: true },
    { file: "rel_test-0.1.2.tar.gz", package: "rel_test-0.1.2", vsn: "0.1.2", size: 1000, modifiedAt: 1, unpacked: false },
  ],
  pending: [
    { vsn: "0.1.1", state: "unpacked", package: null },
    { vsn: "0.1.2", state: "package", package: "rel_test-0.1.2" },
  ],
  path: null,
};

describe("agent replies", () => {
  it("has a schema for every method the server asks", () => {
    expect(Object.keys(REPLIES).sort()).toEqual(
      ["ets_tables", "find_processes", "old_code", "ports", "process_detail", "refresh", "releases", "system_overview", "upgrade_command", "upgrade_plan"].sort(),
    );
  });

  it("types a releases reply as the agent sends it", () => {
    const r = parseReply("releases", releases);
    assert(r.ok, r.ok ? "" : r.problem);
    expect(r.reply.packages.map((p) => [p.package, p.unpacked])).toEqual([
      ["rel_test-0.1.1", true],
      ["rel_test-0.1.2", false],
    ]);
  });

  it("beamdeck releases lists the releases, then the packages not unpacked, by their package names", () => {
    const r = parseReply("releases", releases);
    assert(r.ok, r.ok ? "" : r.problem);
    expect(releaseRows(r.reply)).toEqual([
      ["rel_test", "0.1.1", "unpacked"],
      ["rel_test", "0.1.0", "permanent"],
      ["rel_test-0.1.2", "0.1.2", "package (not unpacked)"],
    ]);
  });

  it("names the field of a reply that does not match", () => {
    const r = parseReply("releases", { ...releases, packages: [{ name: "rel_test", vsn: "0.1.2" }] });
    assert(!r.ok, "a package without file, package and unpacked was accepted");
    expect(r.problem).toMatch(/^the agent's releases reply does not match the protocol: packages\.0\.file: /);
  });

  it("says an agent without plan digests predates them", () => {
    const r = parseReply("upgrade_plan", { step: "install", from: "0.1.0", to: "0.1.1", verdict: "safe", killed: { install: [], make_permanent: [] } });
    assert(!r.ok, "a plan without a digest was accepted");
    expect(r.problem).toMatch(/digest: missing: the agent predates plan digests/);
  });

  it("turns a bad reply into BD_AGENT_BAD_REPLY and the agent's own codes into the catalogue", () => {
    const codeOf = (e: AgentRequestError) => {
      try {
        agentFailure(e);
      } catch (thrown) {
        assert(thrown instanceof BeamdeckError, String(thrown));
        return thrown.code;
      }
      throw new Error("agentFailure returned");
    };
    expect(codeOf(new AgentRequestError("bad_reply", "x"))).toBe("BD_AGENT_BAD_REPLY");
    expect(codeOf(new AgentRequestError("timeout", "x"))).toBe("BD_AGENT_TIMEOUT");
    expect(codeOf(new AgentRequestError("disconnected", "x"))).toBe("BD_NODE_OFFLINE");
    expect(codeOf(new AgentRequestError("busy", "x"))).toBe("BD_CONFLICT");
    expect(codeOf(new AgentRequestError("not_found", "x"))).toBe("BD_NOT_FOUND");
    expect(codeOf(new AgentRequestError("no_relup", "x"))).toBe("BD_AGENT_ERROR");
  });
});
