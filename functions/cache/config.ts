import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";

/** The cache function's tunables, each with a default (the env schema below defaults to these). */
export const CACHE_DEFAULTS = {
  /** A coalesced follower falls back to its own model call when its leader has not answered in this time. */
  coalesceTimeoutSeconds: 120,
  /** How soon a follower checks again for its leader's answer. */
  coalesceRecheckSeconds: 1,
  /** How soon a conversation turn checks again whether the turns before it are done. */
  conversationRecheckSeconds: 1,
  /** History tokens a turn may carry before older turns are summarised (the source design's 2048-token cut-off). */
  historyTokenBudget: 2048,
  /** The model's context window: DEEPQUEUE_MAX_MODEL_LEN's default (the common env schema's). */
  maxModelLen: baseEnvSchema.shape.DEEPQUEUE_MAX_MODEL_LEN.parse(undefined),
  /** Most turns one conversation may have; later turns fail with invalid_request. */
  maxConversationTurns: 1000,
  /** Longest summary, in tokens. */
  summaryMaxTokens: 256,
  /** Tokens a summarizer call needs besides the transcript: its instructions and its answer. */
  summaryReserveTokens: 512,
  /** SQS batches handled at once per replica. */
  concurrency: 4,
} as const;

const cacheEnvSchema = baseEnvSchema.extend({
  DEEPQUEUE_COALESCE_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .default(CACHE_DEFAULTS.coalesceTimeoutSeconds),
  DEEPQUEUE_COALESCE_RECHECK_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(900)
    .default(CACHE_DEFAULTS.coalesceRecheckSeconds),
  DEEPQUEUE_CONVERSATION_RECHECK_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(900)
    .default(CACHE_DEFAULTS.conversationRecheckSeconds),
  DEEPQUEUE_HISTORY_TOKEN_BUDGET: z.coerce.number().int().min(64).default(CACHE_DEFAULTS.historyTokenBudget),
  DEEPQUEUE_CONVERSATION_MAX_TURNS: z.coerce
    .number()
    .int()
    .min(1)
    .default(CACHE_DEFAULTS.maxConversationTurns),
  DEEPQUEUE_CACHE_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(CACHE_DEFAULTS.concurrency),
});
type CacheEnv = z.infer<typeof cacheEnvSchema>;

/** @example const env = loadCacheEnv(); */
export function loadCacheEnv(source: Record<string, string | undefined> = process.env): CacheEnv {
  return loadEnv(cacheEnvSchema, source);
}
