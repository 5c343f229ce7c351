/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4),
 * for tests of GET /metrics: any line it cannot read whole is an error, not
 * skipped. Checked: metric and label names, label-value escapes, sample
 * values, one HELP and one TYPE per family given before its samples, sample
 * names that belong to their family's type (`_bucket`/`_sum`/`_count` only
 * for histograms and summaries), no series twice, and for a histogram:
 * cumulative buckets, a `+Inf` bucket equal to `_count`.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  helps: Map<string, string>;
  samples: Sample[];
  /** Samples of `name` whose labels include all of `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
  /** The one sample of `name` with exactly these labels (an error when there is none or several). */
  value(name: string, labels?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`not a sample value "${text}": ${line}`);
  return Number(text);
}

/** `{a="x",b="y\"z"}` read character by character: an unescaped quote, a bad escape or a stray character is an error. */
function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`label without "=": ${line}`);
    const key = text.slice(i, eq);
    if (!LABEL.test(key)) throw new Error(`bad label name "${key}": ${line}`);
    if (key in labels) throw new Error(`label "${key}" twice: ${line}`);
    if (text[eq + 1] !== '"') throw new Error(`label value not quoted: ${line}`);
    let v = "";
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`unterminated label value: ${line}`);
      if (c === '"') break;
      if (c === "\n") throw new Error(`raw newline in a label value: ${line}`);
      if (c === "\\") {
        const e = text[j + 1];
        if (e === "n") v += "\n";
        else if (e === "\\" || e === '"') v += e;
        else throw new Error(`bad escape "\\${e}" in a label value: ${line}`);
        j += 2;
        continue;
      }
      v += c;
      j += 1;
    }
    labels[key] = v;
    i = j + 1;
    if (i < text.length) {
      if (text[i] !== ",") throw new Error(`expected "," between labels: ${line}`);
      i += 1;
    }
  }
  return labels;
}

/** The family a sample belongs to, given the declared types. */
function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && (types.get(m[1]) === "histogram" || types.get(m[1]) === "summary") && !(m[2] === "bucket" && types.get(m[1]) === "summary")) return m[1];
  throw new Error(`sample ${name} has no TYPE before it`);
}

export function parseExposition(text: string): Exposition {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const withSamples = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) {
        if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`malformed ${line.slice(2, 6)} line: ${line}`);
        continue; // a plain comment
      }
      const [, what, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`bad metric name "${name}": ${line}`);
      if (withSamples.has(name)) throw new Error(`${what} for ${name} after its samples: ${line}`);
      if (what === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`unknown type "${rest}": ${line}`);
        if (types.has(name)) throw new Error(`second TYPE for ${name}`);
        types.set(name, rest);
      } else {
        if (helps.has(name)) throw new Error(`second HELP for ${name}`);
        helps.set(name, rest);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const [, name, labelText, valueText] = m;
    const labels = parseLabels(labelText ?? "", line);
    const family = familyOf(name, types);
    withSamples.add(family);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`series twice: ${line}`);
    seen.add(key);
    samples.push({ name, labels, value: parseValue(valueText, line) });
  }
  for (const name of withSamples) if (!helps.has(name)) throw new Error(`no HELP for ${name}`);
  for (const [name, type] of types) if (type === "histogram") checkHistogram(name, samples);

  const find = (name: string, labels: Record<string, string> = {}) => samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const value = (name: string, labels: Record<string, string> = {}) => {
    const exact = find(name, labels).filter((s) => Object.keys(s.labels).length === Object.keys(labels).length);
    if (exact.length !== 1) throw new Error(`${exact.length} samples of ${name}${JSON.stringify(labels)}`);
    return exact[0].value;
  };
  return { types, helps, samples, find, value };
}

/** Buckets cumulative in `le` order per series, `+Inf` present and equal to `_count`. */
function checkHistogram(name: string, samples: Sample[]): void {
  const series = new Map<string, { le: number; v: number }[]>();
  const key = (l: Record<string, string>) =>
    JSON.stringify(
      Object.entries(l)
        .filter(([k]) => k !== "le")
        .sort(),
    );
  for (const s of samples.filter((x) => x.name === `${name}_bucket`)) {
    if (s.labels.le === undefined) throw new Error(`${name}_bucket without le`);
    const list = series.get(key(s.labels)) ?? [];
    list.push({ le: parseValue(s.labels.le, `${name} le`), v: s.value });
    series.set(key(s.labels), list);
  }
  for (const [k, buckets] of series) {
    buckets.sort((a, b) => a.le - b.le);
    for (let i = 1; i < buckets.length; i += 1) if (buckets[i].v < buckets[i - 1].v) throw new Error(`${name}: buckets not cumulative`);
    const inf = buckets.at(-1);
    if (!inf || inf.le !== Number.POSITIVE_INFINITY) throw new Error(`${name}: no +Inf bucket`);
    const count = samples.find((x) => x.name === `${name}_count` && key(x.labels) === k);
    if (!count || count.value !== inf.v) throw new Error(`${name}: _count differs from the +Inf bucket`);
    if (!samples.some((x) => x.name === `${name}_sum` && key(x.labels) === k)) throw new Error(`${name}: no _sum`);
  }
}
