import { describe, expect, it } from "vitest";
import { VLLM_METRICS } from "../functions/shared/vllm-metrics.ts";
import type { BatchEngine } from "../local/sim/latency-model.ts";
import { createSimMetrics } from "../local/sim/metrics.ts";
import { bucketDelta, histogramBuckets, histogramQuantile, parsePrometheus, sumOf } from "./prometheus.ts";

describe("reading a model server's /metrics", () => {
  it("reads vLLM's gauges and TTFT histogram as the simulator exports them", async () => {
    const engine = { numRunning: 3, numWaiting: 2, kvCacheUsage: 0.5 } as unknown as BatchEngine;
    const metrics = createSimMetrics(engine, "deepseek-chat");
    for (const seconds of [0.03, 0.05, 0.07, 0.09, 0.2, 0.3, 0.6, 0.9, 3, 8])
      metrics.timeToFirstToken.observe({ model_name: "deepseek-chat" }, seconds);
    const samples = parsePrometheus(await metrics.registry.metrics());

    expect(sumOf(samples, VLLM_METRICS.numRequestsRunning)).toBe(3);
    expect(sumOf(samples, VLLM_METRICS.numRequestsWaiting)).toBe(2);
    expect(sumOf(samples, "vllm:not_a_metric")).toBeUndefined();
    const buckets = histogramBuckets(samples, VLLM_METRICS.timeToFirstTokenSeconds);
    expect(buckets.get(Infinity)).toBe(10);
    // 5th of 10 observations is in (0.1, 0.25]; interpolation puts p50 inside that bucket.
    const p50 = histogramQuantile(0.5, buckets)!;
    expect(p50).toBeGreaterThan(0.1);
    expect(p50).toBeLessThanOrEqual(0.25);
    const p95 = histogramQuantile(0.95, buckets)!;
    // 9.5th of 10: inside (7.5, 10], where the 8 s observation is.
    expect(p95).toBeCloseTo(8.75);
  });

  it("computes quantiles as Prometheus's histogram_quantile does", () => {
    const b = new Map([
      [1, 2],
      [2, 4],
      [Infinity, 4],
    ]);
    expect(histogramQuantile(0.5, b)).toBe(1);
    expect(histogramQuantile(0.75, b)).toBe(1.5);
    expect(
      histogramQuantile(
        0.5,
        new Map([
          [1, 0],
          [Infinity, 0],
        ]),
      ),
    ).toBeUndefined();
    // Everything above the highest finite bucket: that bound is the answer.
    expect(
      histogramQuantile(
        0.99,
        new Map([
          [1, 0],
          [Infinity, 5],
        ]),
      ),
    ).toBe(1);
  });

  it("windows a cumulative histogram, and survives a server restart", () => {
    const earlier = new Map([
      [1, 5],
      [Infinity, 10],
    ]);
    const later = new Map([
      [1, 6],
      [Infinity, 20],
    ]);
    expect([...bucketDelta(later, earlier)]).toEqual([
      [1, 1],
      [Infinity, 10],
    ]);
    const restarted = new Map([
      [1, 1],
      [Infinity, 2],
    ]);
    expect(bucketDelta(restarted, earlier)).toBe(restarted);
  });

  it("reads labels with escapes and skips comments", () => {
    const samples = parsePrometheus('# HELP x y\nx{a="q\\"uote",b="2"} 1.5\nbad line\ny +Inf\n');
    expect(samples).toEqual([
      { name: "x", labels: { a: 'q"uote', b: "2" }, value: 1.5 },
      { name: "y", labels: {}, value: Infinity },
    ]);
  });
});
