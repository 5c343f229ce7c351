/** The test suite's Prometheus text parser refuses what a scraper would refuse. */
import { describe, expect, it } from "vitest";
import { parseExposition } from "../support/prometheus-text";

const good = [
  "# HELP up_total Things",
  "# TYPE up_total counter",
  'up_total{node="a@h",kind="x \\"q\\" \\\\ \\n"} 3',
  "# HELP lag Lag",
  "# TYPE lag histogram",
  'lag_bucket{le="0.5"} 1',
  'lag_bucket{le="+Inf"} 2',
  "lag_sum 0.7",
  "lag_count 2",
  "",
].join("\n");

describe("parseExposition", () => {
  it("reads families, labels with escapes and histograms", () => {
    const e = parseExposition(good);
    expect(e.types.get("lag")).toBe("histogram");
    expect(e.find("up_total")[0].labels).toEqual({ node: "a@h", kind: 'x "q" \\ \n' });
    expect(e.value("lag_count")).toBe(2);
    expect(() => e.value("up_total")).toThrow(/0 samples/);
  });

  it.each([
    ["a sample without TYPE", "# HELP x X\nx 1\n", /no TYPE/],
    ["a sample without HELP", "# TYPE x gauge\nx 1\n", /no HELP/],
    ["an unquoted label value", "# HELP x X\n# TYPE x gauge\nx{a=1} 1\n", /not quoted/],
    ["a bad escape", '# HELP x X\n# TYPE x gauge\nx{a="\\t"} 1\n', /bad escape/],
    ["a stray character between labels", '# HELP x X\n# TYPE x gauge\nx{a="1" b="2"} 1\n', /expected ","/],
    ["a value that is no number", "# HELP x X\n# TYPE x gauge\nx one\n", /not a sample value/],
    ["the same series twice", "# HELP x X\n# TYPE x gauge\nx 1\nx 2\n", /twice/],
    ["TYPE after samples", "# HELP x X\n# TYPE x gauge\nx 1\n# TYPE x counter\n", /after its samples/],
    ["no final newline", "# HELP x X\n# TYPE x gauge\nx 1", /newline/],
    ["buckets not cumulative", '# HELP h H\n# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n', /cumulative/],
    ["+Inf bucket differing from _count", '# HELP h H\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', /_count differs/],
    ["_bucket of a gauge", '# HELP g G\n# TYPE g gauge\ng_bucket{le="1"} 1\n', /no TYPE/],
  ])("refuses %s", (_what, text, error) => {
    expect(() => parseExposition(text)).toThrow(error);
  });
});
