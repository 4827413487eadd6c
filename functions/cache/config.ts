import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";
import { DEFAULT_CACHE_TTL_SECONDS } from "../shared/stores/cache.ts";

/** The cache function's tunables, each with a default. */
export const CACHE_DEFAULTS = {
  /** Fresh answers live this long (the source design's Redis TTL). */
  ttlSeconds: DEFAULT_CACHE_TTL_SECONDS,
  /** A coalesced follower falls back to its own model call when its leader has not answered in this time. */
  coalesceTimeoutSeconds: 120,
  /** How soon a follower checks again for its leader's answer. */
  coalesceRecheckSeconds: 1,
  /** How soon a conversation turn checks again whether the turns before it are done. */
  conversationRecheckSeconds: 1,
  /** History tokens a turn may carry before older turns are summarised (the source design's 2048-token cut-off). */
  historyTokenBudget: 2048,
  /** Longest summary, in tokens. */
  summaryMaxTokens: 256,
  /** Most turns one conversation may have; later turns fail with invalid_request. */
  conversationMaxTurns: 1000,
  /** SQS batches handled at once per replica. */
  concurrency: 4,
} as const;

export const cacheEnvSchema = baseEnvSchema.extend({
  /** @default 300 */
  DEEPQUEUE_CACHE_TTL_SECONDS: z.coerce.number().int().min(1).default(CACHE_DEFAULTS.ttlSeconds),
  /** @default 120 */
  DEEPQUEUE_COALESCE_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(CACHE_DEFAULTS.coalesceTimeoutSeconds),
  /** @default 1 */
  DEEPQUEUE_COALESCE_RECHECK_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(900)
    .default(CACHE_DEFAULTS.coalesceRecheckSeconds),
  /** @default 1 */
  DEEPQUEUE_CONVERSATION_RECHECK_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(900)
    .default(CACHE_DEFAULTS.conversationRecheckSeconds),
  /** @default 2048 */
  DEEPQUEUE_HISTORY_TOKEN_BUDGET: z.coerce.number().int().min(64).default(CACHE_DEFAULTS.historyTokenBudget),
  /** @default 1000 */
  DEEPQUEUE_CONVERSATION_MAX_TURNS: z.coerce
    .number()
    .int()
    .min(1)
    .default(CACHE_DEFAULTS.conversationMaxTurns),
  /** @default 4 */
  DEEPQUEUE_CACHE_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(CACHE_DEFAULTS.concurrency),
});
export type CacheEnv = z.infer<typeof cacheEnvSchema>;

/** @example const env = loadCacheEnv(); */
export function loadCacheEnv(source: Record<string, string | undefined> = process.env): CacheEnv {
  return loadEnv(cacheEnvSchema, source);
}
