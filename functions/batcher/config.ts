import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";
import { DEFAULT_CACHE_TTL_SECONDS } from "../shared/stores/cache.ts";

/**
 * The batcher's tunables. Batch size 10 is the source design's; the wait is
 * milliseconds, not its 5 s flush interval (measured with bench/throughput.ts,
 * docs/pipeline.md has the numbers). K (max in flight) is tuned to the
 * simulator's 7B-on-one-A100 profile (max-num-seqs 64): see maxInFlight.
 */
export const BATCHER_DEFAULTS = {
  /** Requests per micro-batch (one SQS receive holds at most 10). */
  batchSize: 10,
  /** How long a micro-batch may wait to fill after its first request. */
  batchWaitMs: 20,
  /**
   * Requests in flight to the model server per replica (K): 1.5 × the
   * simulator's max-num-seqs (64). Measured (bench/throughput.ts, 400
   * requests): K=64 reached 0.84 of direct throughput, 96 0.92, 128 0.91 — a
   * short waiting queue on the server refills its running batch while a
   * finished micro-batch is being stored; more only lengthens that queue.
   */
  maxInFlight: 96,
  /** Answer of the last degradation level. */
  staticReply:
    "The model is unavailable right now and no earlier answer to this prompt is stored. Please try again later.",
  /** Degrade when a retry would land later than this before the deadline. */
  degradeMarginSeconds: 10,
  /** Back-off of retries through the queue: base × 2^(attempt-1), capped. */
  retryBaseSeconds: 2,
  retryMaxSeconds: 60,
  /** Streamed answers (`reply.stream`): at most one delta message per request this often; the first text goes at once. */
  replyIntervalMs: 100,
  /** Per model call; generous, because a long answer under load takes tens of seconds. */
  modelTimeoutMs: 50_000,
  /** Freshness of the answers the batcher stores for the cache function. */
  cacheTtlSeconds: DEFAULT_CACHE_TTL_SECONDS,
  /** Degradation level 2's model; none by default. */
  fallbackModel: undefined as string | undefined,
} as const;

/**
 * What a Batcher can be tuned with (functions/batcher/batcher.ts), every field optional: the
 * Batcher fills the rest from BATCHER_DEFAULTS. `batchWaitMs` and `modelTimeoutMs` belong to the
 * worker and the inference client.
 */
export type BatcherOptions = Partial<BatcherSettings>;
/** BatcherOptions with the defaults filled in. */
export type BatcherSettings = {
  -readonly [K in Exclude<keyof typeof BATCHER_DEFAULTS, "batchWaitMs" | "modelTimeoutMs">]: Widen<
    (typeof BATCHER_DEFAULTS)[K]
  >;
};
type Widen<T> = T extends number ? number : T extends string ? string : T;

export const batcherEnvSchema = baseEnvSchema.extend({
  DEEPQUEUE_BATCH_SIZE: z.coerce.number().int().min(1).max(10).default(BATCHER_DEFAULTS.batchSize),
  DEEPQUEUE_BATCH_WAIT_MS: z.coerce.number().int().min(0).max(10_000).default(BATCHER_DEFAULTS.batchWaitMs),
  DEEPQUEUE_BATCHER_MAX_IN_FLIGHT: z.coerce
    .number()
    .int()
    .min(1)
    .max(1024)
    .default(BATCHER_DEFAULTS.maxInFlight),
  DEEPQUEUE_STATIC_REPLY: z.string().min(1).default(BATCHER_DEFAULTS.staticReply),
  DEEPQUEUE_DEGRADE_MARGIN_SECONDS: z.coerce.number().min(0).default(BATCHER_DEFAULTS.degradeMarginSeconds),
  DEEPQUEUE_RETRY_BASE_SECONDS: z.coerce.number().int().min(1).default(BATCHER_DEFAULTS.retryBaseSeconds),
  DEEPQUEUE_RETRY_MAX_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(900)
    .default(BATCHER_DEFAULTS.retryMaxSeconds),
  DEEPQUEUE_REPLY_INTERVAL_MS: z.coerce
    .number()
    .int()
    .min(10)
    .max(10_000)
    .default(BATCHER_DEFAULTS.replyIntervalMs),
  DEEPQUEUE_MODEL_TIMEOUT_MS: z.coerce.number().int().min(100).default(BATCHER_DEFAULTS.modelTimeoutMs),
  DEEPQUEUE_CACHE_TTL_SECONDS: z.coerce.number().int().min(1).default(BATCHER_DEFAULTS.cacheTtlSeconds),
});
export type BatcherEnv = z.infer<typeof batcherEnvSchema>;

/** @example const env = loadBatcherEnv(); */
export function loadBatcherEnv(source: Record<string, string | undefined> = process.env): BatcherEnv {
  return loadEnv(batcherEnvSchema, source);
}
