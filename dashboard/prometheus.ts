/**
 * Just enough of the Prometheus text format
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format)
 * to read a model server's gauges and one histogram. prom-client writes the
 * format but does not read it, and the parsers on npm are unmaintained; the
 * format's sample lines are simple enough.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** @example parsePrometheus('up{job="a"} 1') // [{ name: "up", labels: { job: "a" }, value: 1 }] */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, raw] of match[2]?.matchAll(LABEL) ?? []) {
      labels[key!] = raw!.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    }
    const value = match[3] === "+Inf" ? Infinity : match[3] === "-Inf" ? -Infinity : Number(match[3]);
    if (Number.isNaN(value) && match[3] !== "NaN") continue; // not a sample line
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** The sum over every label set of `name` (vLLM labels by model), or undefined when absent. */
export function sumOf(samples: readonly Sample[], name: string): number | undefined {
  let found = false;
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    found = true;
    total += s.value;
  }
  return found ? total : undefined;
}

/** Cumulative bucket counts of a histogram summed over its label sets, by upper bound. */
export type Buckets = Map<number, number>;

export function histogramBuckets(samples: readonly Sample[], name: string): Buckets {
  const buckets: Buckets = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || s.labels.le === undefined) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  return buckets;
}

/** `later - earlier`, bucket by bucket (a window of a cumulative histogram); a reset keeps `later`. */
export function bucketDelta(later: Buckets, earlier: Buckets | undefined): Buckets {
  if (!earlier) return later;
  const delta: Buckets = new Map();
  for (const [le, count] of later) {
    const before = earlier.get(le) ?? 0;
    if (count < before) return later; // the server restarted: its counters began again
    delta.set(le, count - before);
  }
  return delta;
}

/**
 * Prometheus's `histogram_quantile`: linear interpolation inside the bucket
 * the quantile falls in; the lowest bucket starts at 0; a quantile in the
 * `+Inf` bucket is the highest finite bound. Undefined without observations.
 *
 * @example histogramQuantile(0.5, new Map([[1, 2], [2, 4], [Infinity, 4]])) // 1
 */
export function histogramQuantile(q: number, buckets: Buckets): number | undefined {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return lowerBound;
      if (count === lowerCount) return le;
      return lowerBound + ((le - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return lowerBound;
}
