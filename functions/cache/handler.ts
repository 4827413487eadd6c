import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createInferenceClient } from "../shared/inference-client.ts";
import { createLogger } from "../shared/logger.ts";
import { QueueUrls } from "../shared/queues.ts";
import { DynamoResponseCache } from "../shared/stores/cache.ts";
import { DynamoConversationStore } from "../shared/stores/conversations.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { DynamoUsageStore } from "../shared/stores/usage.ts";
import { type CacheDeps, CacheStage } from "./cache.ts";
import { CACHE_DEFAULTS, loadCacheEnv } from "./config.ts";
import { summarizationMessages } from "./context.ts";

/**
 * The cache function: an SQS handler on `<prefix>-requests` with partial batch
 * failures (Powertools batch): each record is handled on its own, a failure
 * (or a record sent back to wait) never fails its neighbours.
 *
 * @example const handler = createCacheHandler(deps); await handler(sqsEvent, context);
 */
export function createCacheHandler(deps: CacheDeps) {
  const stage = new CacheStage(deps);
  const recordHandler = (record: SQSRecord) => stage.handleRecord(record);
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
    // A processor per invocation: the worker runtime runs invocations concurrently.
    processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), {
      context,
      throwOnFullBatchFailure: false,
    });
}

/** Dependencies from the environment (Lambda style: built once per process). */
export function cacheDepsFromEnv(source: Record<string, string | undefined> = process.env): CacheDeps {
  const env = loadCacheEnv(source);
  const prefix = env.DEEPQUEUE_PREFIX;
  const [ddb, sqs] = [createDynamoClient({ env }), createSqsClient({ env })];
  return {
    sqs,
    queueUrls: new QueueUrls(sqs),
    prefix,
    requests: new DynamoRequestStore(ddb, prefix),
    tenants: new DynamoTenantStore(ddb, prefix),
    conversations: new DynamoConversationStore(ddb, prefix),
    usage: new DynamoUsageStore(ddb, prefix),
    responses: new DynamoResponseCache(ddb, prefix),
    summarize: summarizerFromEnv(env),
    config: {
      coalesceTimeoutSeconds: env.DEEPQUEUE_COALESCE_TIMEOUT_SECONDS,
      coalesceRecheckSeconds: env.DEEPQUEUE_COALESCE_RECHECK_SECONDS,
      conversationRecheckSeconds: env.DEEPQUEUE_CONVERSATION_RECHECK_SECONDS,
      historyTokenBudget: env.DEEPQUEUE_HISTORY_TOKEN_BUDGET,
      maxModelLen: env.DEEPQUEUE_MAX_MODEL_LEN,
      maxConversationTurns: env.DEEPQUEUE_CONVERSATION_MAX_TURNS,
    },
    logger: createLogger({ name: "cache", level: env.LOG_LEVEL }),
  };
}

/**
 * Summaries are written by the fallback model when there is one (cheaper), else the main model.
 * One quick retry only: a failed summary falls back to truncation rather than holding the turn.
 */
function summarizerFromEnv(env: ReturnType<typeof loadCacheEnv>): CacheDeps["summarize"] {
  const inference = createInferenceClient({
    baseUrl: (env.DEEPQUEUE_FALLBACK_MODEL && env.DEEPQUEUE_FALLBACK_INFERENCE_URL) || env.INFERENCE_URL,
    apiKey: env.INFERENCE_API_KEY,
    retries: 1,
  });
  const model = env.DEEPQUEUE_FALLBACK_MODEL ?? env.DEEPQUEUE_MODEL;
  const maxWords = Math.round(CACHE_DEFAULTS.summaryMaxTokens * 0.6);
  return async (transcript) =>
    (
      await inference.chat({
        model,
        messages: summarizationMessages(transcript, maxWords),
        max_tokens: CACHE_DEFAULTS.summaryMaxTokens,
        temperature: 0,
      })
    ).text;
}

let lambdaHandler: ReturnType<typeof createCacheHandler> | undefined;

/** The Lambda entry point: dependencies built once per container, on the first event (importing parses no environment). */
export const handler = (event: SQSEvent, context: Context) => {
  lambdaHandler ??= createCacheHandler(cacheDepsFromEnv());
  return lambdaHandler(event, context);
};
