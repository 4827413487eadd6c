import { describe, expect, it } from "vitest";
import type { ThroughputBenchResult } from "./throughput.ts";
import { throughputSummary } from "./throughput-report.ts";

const stage = (queueWaitMs: number, handlerMs: number) => ({ queueWaitMs, handlerMs });

const result: ThroughputBenchResult = {
  requests: 400,
  maxTokens: 64,
  timeScale: 1,
  direct: {
    byConcurrency: [
      { concurrency: 32, requestsPerSecond: 80 },
      { concurrency: 64, requestsPerSecond: 100 },
    ],
    best: { concurrency: 64, requestsPerSecond: 100 },
  },
  pipeline: {
    requestsPerSecond: 93.5,
    seconds: 4.28,
    completed: 400,
    maxInFlight: 96,
    batchWaitMs: 20,
    meanPromptsPerCall: 9.6,
  },
  ratio: 0.935,
  goalMet: true,
  lowLoad: {
    directMs: 70,
    pipelineMs: 120.5,
    addedMs: 50.5,
    stages: { cache: stage(4, 12), batcher: stage(10, 8), modelMs: 70, deliver: stage(0, 3) },
  },
  notes: [],
};

describe("the throughput bench's summary", () => {
  it("gives the baseline, the pipeline, the ratio against the goal and the per-stage latency", () => {
    expect(throughputSummary(result).split("\n")).toEqual([
      "direct (best of 32/64): 100 req/s at concurrency 64",
      "pipeline: 93.5 req/s (K=96, wait 20 ms, 9.6 prompts per call)",
      "ratio 0.935 (goal ≥ 0.9: met)",
      "low load: direct 70 ms, pipeline 120.5 ms, added 50.5 ms",
      "  cache: queue 4 ms + handler 12 ms; batcher: queue 10 ms + handler 8 ms (+ model 70 ms); deliver: queue 0 ms + handler 3 ms",
    ]);
  });

  it("says when the goal is missed", () => {
    expect(throughputSummary({ ...result, ratio: 0.5, goalMet: false })).toContain(
      "ratio 0.5 (goal ≥ 0.9: missed)",
    );
  });
});
