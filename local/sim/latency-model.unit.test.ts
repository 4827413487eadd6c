import { describe, expect, it } from "vitest";
import {
  BatchEngine,
  decodeTokensPerSecond,
  type LatencyParams,
  loadFactor,
  timeToFirstTokenMs,
  VirtualClock,
} from "./latency-model.ts";
import { SIM_DEFAULTS } from "./options.ts";

const params: LatencyParams = {
  prefillOverheadMs: SIM_DEFAULTS.prefillOverheadMs,
  prefillTimePerTokenMs: SIM_DEFAULTS.prefillTimePerTokenMs,
  interTokenLatencyMs: SIM_DEFAULTS.interTokenLatencyMs,
  timeFactorUnderLoad: SIM_DEFAULTS.timeFactorUnderLoad,
  timeScale: 1,
  maxNumSeqs: SIM_DEFAULTS.maxNumSeqs,
};
const limits = {
  maxNumSeqs: SIM_DEFAULTS.maxNumSeqs,
  maxWaitingQueueLength: 10_000,
  kvCacheTokens: SIM_DEFAULTS.kvCacheTokens,
};

/**
 * Closed loop on a virtual clock: `concurrency` clients each send a request
 * (100 prompt tokens, 128 output tokens) and send the next one as soon as the
 * previous finishes. Returns generated tokens per virtual second.
 */
function closedLoopThroughput(concurrency: number, seconds = 120): number {
  const clock = new VirtualClock();
  const engine = new BatchEngine(() => params, limits, clock);
  let tokens = 0;
  const send = (): void => {
    engine.submit(
      { promptTokens: 100, outputTokens: 128, maxTokens: 128 },
      {
        onToken: () => {
          tokens += 1;
        },
        onFinish: send,
      },
    );
  };
  for (let i = 0; i < concurrency; i++) send();
  clock.advance(seconds * 1000);
  return tokens / seconds;
}

describe("latency model", () => {
  it("slows each step as the batch grows, from 1 to timeFactorUnderLoad", () => {
    expect(loadFactor(1, params)).toBe(1);
    expect(loadFactor(params.maxNumSeqs, params)).toBeCloseTo(params.timeFactorUnderLoad);
    expect(loadFactor(1000, params)).toBeCloseTo(params.timeFactorUnderLoad);
    expect(timeToFirstTokenMs(1000, 1, params)).toBeCloseTo(20 + 1000 * 0.1);
    expect(timeToFirstTokenMs(1000, 1, { ...params, timeScale: 0.01 })).toBeCloseTo(1.2);
  });

  it("saturates: throughput rises with concurrency, then is flat beyond max-num-seqs", () => {
    const t1 = closedLoopThroughput(1);
    const t8 = closedLoopThroughput(8);
    const t64 = closedLoopThroughput(64);
    const t128 = closedLoopThroughput(128);
    const t256 = closedLoopThroughput(256);
    // One sequence alone decodes at ~1 / 15 ms.
    expect(t1).toBeGreaterThan(50);
    expect(t1).toBeLessThan(70);
    expect(t8).toBeGreaterThan(5 * t1);
    expect(t64).toBeGreaterThan(15 * t1);
    // Beyond max-num-seqs (64) the extra requests only wait.
    expect(Math.abs(t128 - t64) / t64).toBeLessThan(0.05);
    expect(Math.abs(t256 - t64) / t64).toBeLessThan(0.05);
    // The closed-form decode rate agrees with the simulation (prefill makes the simulation a bit slower).
    expect(t64).toBeLessThan(decodeTokensPerSecond(64, params));
    expect(t64).toBeGreaterThan(0.85 * decodeTokensPerSecond(64, params));
    expect(decodeTokensPerSecond(256, params)).toBe(decodeTokensPerSecond(64, params));
  });

  it("runs at most max-num-seqs, queues the rest FIFO, and refuses beyond the waiting limit", () => {
    const clock = new VirtualClock();
    const engine = new BatchEngine(
      () => params,
      { maxNumSeqs: 2, maxWaitingQueueLength: 1, kvCacheTokens: 1e6 },
      clock,
    );
    const finished: string[] = [];
    const queueTimes: number[] = [];
    const submit = (name: string) =>
      engine.submit(
        { promptTokens: 10, outputTokens: 4, maxTokens: 4 },
        { onStart: (q) => queueTimes.push(q), onToken: () => {}, onFinish: () => finished.push(name) },
      );
    expect(submit("a")).toBeDefined();
    expect(submit("b")).toBeDefined();
    expect(submit("c")).toBeDefined();
    expect(submit("d")).toBeUndefined();
    expect(engine.numRunning).toBe(2);
    expect(engine.numWaiting).toBe(1);
    clock.advance(10_000);
    expect(finished).toEqual(["a", "b", "c"]);
    expect(queueTimes[2]).toBeGreaterThan(0);
    expect(engine.numRunning).toBe(0);
  });

  it("admits only what fits the KV cache, and frees it on cancel", () => {
    const clock = new VirtualClock();
    const engine = new BatchEngine(
      () => params,
      { maxNumSeqs: 10, maxWaitingQueueLength: 10, kvCacheTokens: 1000 },
      clock,
    );
    const events = { onToken: () => {}, onFinish: () => {} };
    const a = engine.submit({ promptTokens: 300, outputTokens: 200, maxTokens: 300 }, events);
    engine.submit({ promptTokens: 300, outputTokens: 200, maxTokens: 300 }, events);
    expect(engine.numRunning).toBe(1);
    expect(engine.numWaiting).toBe(1);
    clock.advance(100);
    expect(engine.kvCacheUsage).toBeGreaterThan(0.3);
    engine.cancel(a!);
    expect(engine.numRunning).toBe(1);
    expect(engine.numWaiting).toBe(0);
  });

  it("reports each token's gap: TTFT first, then inter-token latency", () => {
    const clock = new VirtualClock();
    const engine = new BatchEngine(() => params, limits, clock);
    const gaps: number[] = [];
    engine.submit(
      { promptTokens: 200, outputTokens: 3, maxTokens: 3 },
      { onToken: (_i, g) => gaps.push(g), onFinish: () => {} },
    );
    clock.advance(1000);
    expect(gaps).toEqual([20 + 200 * 0.1, 15, 15].map((v) => expect.closeTo(v, 6)));
  });

  it("keeps to its timeline when timers fire early, as Node's do (delays truncated to whole ms)", () => {
    class TruncatingClock extends VirtualClock {
      override setTimer(fn: () => void, ms: number): unknown {
        return super.setTimer(fn, Math.trunc(ms));
      }
    }
    const clock = new TruncatingClock();
    const scaled = { ...params, timeScale: 0.25 }; // 3.75 ms per token: truncated to 3 it would run 25% fast
    const engine = new BatchEngine(() => scaled, limits, clock);
    let finishedAt = 0;
    engine.submit(
      { promptTokens: 10, outputTokens: 200, maxTokens: 200 },
      { onToken: () => {}, onFinish: () => (finishedAt = clock.now()) },
    );
    clock.advance(10_000);
    const ideal = (20 + 10 * 0.1) * 0.25 + 199 * 15 * 0.25;
    expect(Math.abs(finishedAt - ideal)).toBeLessThan(1);
  });
});
