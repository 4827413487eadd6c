/**
 * Small, exact statistics over recorded samples (no histograms, no
 * approximation): the benches keep every latency they measure.
 */

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/**
 * Nearest-rank percentile of `sorted` (ascending); NaN when empty.
 *
 * @example percentile([1, 2, 3, 4], 0.5) // 2
 */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** @example summarize([12, 15, 40]).p50 // 15 */
export function summarize(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
  };
}

/** Median, the statistic the stage breakdown uses (robust to one slow poll). */
export function median(values: readonly number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/**
 * The empirical CDF as at most `points` (x, fraction ≤ x) pairs, for charts.
 * With `total` larger than the samples (requests never answered), the curve
 * stops below 1: the share that never got an answer stays visible.
 *
 * @example cdf([3, 1, 2]) // [[1, 1/3], [2, 2/3], [3, 1]]
 */
export function cdf(values: readonly number[], points = 200, total = values.length): Array<[number, number]> {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const n = Math.max(total, sorted.length);
  const step = Math.max(1, Math.floor(sorted.length / points));
  const out: Array<[number, number]> = [];
  for (let i = step - 1; i < sorted.length; i += step) out.push([sorted[i]!, (i + 1) / n]);
  const last = sorted.length - 1;
  if (out.at(-1)?.[0] !== sorted[last]) out.push([sorted[last]!, sorted.length / n]);
  return out;
}

/** Rounds for reports: 3 significant digits, integers above 100. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  if (Math.abs(value) >= 100) return Math.round(value);
  return Number(value.toPrecision(3));
}

/** `a / b` rounded, or NaN when b is 0. */
export function ratio(a: number, b: number): number {
  return b === 0 ? Number.NaN : round(a / b);
}
