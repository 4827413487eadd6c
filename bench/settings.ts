import type { SimOptions } from "../local/sim/options.ts";
import type { SYNC_GATEWAY_DEFAULTS } from "./sync-gateway.ts";

/**
 * The two run sizes. `full` uses the simulator's real-time profile (one A100
 * with a 7B model, vLLM continuous batching); `quick` (the CI smoke run, under
 * two minutes on two cores) makes the simulator 20x faster and every run
 * shorter, so its numbers only show that each scenario works.
 */
export interface BenchSettings {
  mode: "full" | "quick";
  simulator: Partial<SimOptions>;
  model: string;
  /** Tokens asked per request (all scenarios, unless said otherwise). */
  maxTokens: number;
  /** Concurrency sweep for the throughput chart (direct, pipeline, synchronous gateway). */
  concurrencies: number[];
  /** How long each sweep point runs, ms. */
  sweepPointMs: number;
  /** Requests in the direct-vs-pipeline and batching runs. */
  throughputRequests: number;
  /** Requests in the cross-check run of bench/throughput.ts (runThroughputBench). */
  crossCheckRequests: number;
  /** Requests in each run of the batching scenario. */
  batchingRequests: number;
  ingestConcurrencies: number[];
  /** Seconds runIngestBench measures each target per concurrency. */
  ingestSecondsPerPoint: number;
  /** Scenario 3: offered load as a fraction of the direct best throughput, and for how long. */
  offeredLoadFraction: number;
  offeredSeconds: number;
  /** …and never more than this many requests per second. */
  maxOfferedRate: number;
  syncGateway: Partial<typeof SYNC_GATEWAY_DEFAULTS>;
  /** How long a producer waits for an answer before counting it as timed out. */
  answerTimeoutMs: number;
  cachePrompts: number;
  coalesceCopies: number;
  stageRequests: number;
  bodySizesBytes: number[];
  messageCounts: number[];
  conversationTurns: number;
  scaleRequests: number;
  /** Scenario 8: the capacity runs (bench/capacity.ts), requests per run, and whether to build first. */
  capacityRuns: Array<{ mode: "split" | "dev"; profile: "fast" | "instant" }>;
  capacityRequests: number;
  /** Requests through the pipeline before each capacity run is measured. */
  capacityWarmup: number;
  capacityCompiled: boolean;
}

export const FULL: BenchSettings = {
  mode: "full",
  simulator: { timeScale: 1, seed: 7 },
  model: "deepseek-chat",
  maxTokens: 128,
  concurrencies: [1, 4, 16, 64],
  sweepPointMs: 8_000,
  throughputRequests: 450,
  crossCheckRequests: 150,
  batchingRequests: 200,
  ingestConcurrencies: [1, 8, 32],
  ingestSecondsPerPoint: 4,
  offeredLoadFraction: 0.75,
  offeredSeconds: 15,
  maxOfferedRate: 100,
  syncGateway: {},
  answerTimeoutMs: 30_000,
  cachePrompts: 8,
  coalesceCopies: 8,
  stageRequests: 12,
  bodySizesBytes: [100, 1_000, 4_000, 12_000, 200_000],
  messageCounts: [1, 8, 32, 64],
  conversationTurns: 8,
  scaleRequests: 200,
  capacityRuns: [
    { mode: "split", profile: "fast" },
    { mode: "split", profile: "instant" },
    { mode: "dev", profile: "fast" },
    { mode: "dev", profile: "instant" },
  ],
  capacityRequests: 600,
  capacityWarmup: 400,
  capacityCompiled: true,
};

export const QUICK: BenchSettings = {
  mode: "quick",
  simulator: { timeScale: 0.05, seed: 7 },
  model: "deepseek-chat",
  maxTokens: 32,
  concurrencies: [1, 8, 32],
  sweepPointMs: 1_500,
  throughputRequests: 60,
  crossCheckRequests: 30,
  batchingRequests: 60,
  ingestConcurrencies: [4],
  ingestSecondsPerPoint: 1,
  offeredLoadFraction: 0.75,
  offeredSeconds: 3,
  maxOfferedRate: 25,
  // Scaled with the simulator: the same shape (pool of 4, retries), shorter waits.
  syncGateway: { workerTimeoutMs: 5_000, modelTimeoutMs: 2_000, backoffFactorMs: 100 },
  answerTimeoutMs: 10_000,
  cachePrompts: 3,
  coalesceCopies: 4,
  stageRequests: 4,
  bodySizesBytes: [100, 4_000, 200_000],
  messageCounts: [1, 32],
  conversationTurns: 2,
  scaleRequests: 40,
  capacityRuns: [{ mode: "split", profile: "fast" }],
  capacityRequests: 60,
  capacityWarmup: 16,
  capacityCompiled: false,
};
