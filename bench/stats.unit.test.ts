import { describe, expect, it } from "vitest";
import { cdf, percentile, ratio, round, summarize } from "./stats.ts";

describe("bench statistics", () => {
  it("takes nearest-rank percentiles of the recorded samples", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile(sorted, 1)).toBe(100);
    expect(percentile([], 0.5)).toBeNaN();
    expect(summarize([30, 10, 20])).toMatchObject({ count: 3, p50: 20, max: 30, mean: 20 });
  });

  it("draws a CDF that stops below 1 when some requests were never answered", () => {
    expect(cdf([3, 1, 2])).toEqual([
      [1, 1 / 3],
      [2, 2 / 3],
      [3, 1],
    ]);
    const partial = cdf([5, 6], 200, 4);
    expect(partial.at(-1)).toEqual([6, 0.5]);
  });

  it("rounds report numbers to three significant digits and guards division by zero", () => {
    expect(round(0.123456)).toBe(0.123);
    expect(round(1234.5)).toBe(1235);
    expect(ratio(1, 0)).toBeNaN();
    expect(ratio(16.2, 17)).toBe(0.953);
  });
});
