import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { DeepqueueError } from "../shared/errors.ts";
import { createInferenceClient } from "../shared/inference-client.ts";
import { createLogger } from "../shared/logger.ts";
import { QueueUrls } from "../shared/queues.ts";
import { DynamoResponseCache } from "../shared/stores/cache.ts";
import { DynamoConversationStore } from "../shared/stores/conversations.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { Batcher, type BatcherDeps } from "./batcher.ts";
import { loadBatcherEnv } from "./config.ts";

/**
 * The batcher function: an SQS handler on `<prefix>-inference`. The whole SQS
 * batch is planned at once (grouped into model calls); Powertools batch then
 * turns each record's outcome into the partial batch response.
 *
 * @example const handler = createBatcherHandler(deps); await handler(sqsEvent, context);
 */
export function createBatcherHandler(deps: BatcherDeps) {
  const batcher = new Batcher(deps);
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    const outcomes = await batcher.handleBatch(event);
    const recordHandler = async (record: SQSRecord) => {
      const outcome = outcomes.get(record.messageId);
      if (!outcome) throw new DeepqueueError(`no outcome for message ${record.messageId}`);
      if (outcome.status === "rejected") throw outcome.reason;
      return outcome.value;
    };
    return processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), {
      context,
      throwOnFullBatchFailure: false,
    });
  };
}

/** Dependencies from the environment (Lambda style: built once per process). */
export function batcherDepsFromEnv(source: Record<string, string | undefined> = process.env): BatcherDeps {
  const env = loadBatcherEnv(source);
  const ddb = createDynamoClient({ env });
  const sqs = createSqsClient({ env });
  return {
    sqs,
    queueUrls: new QueueUrls(sqs),
    prefix: env.DEEPQUEUE_PREFIX,
    requests: new DynamoRequestStore(ddb, env.DEEPQUEUE_PREFIX),
    tenants: new DynamoTenantStore(ddb, env.DEEPQUEUE_PREFIX),
    conversations: new DynamoConversationStore(ddb, env.DEEPQUEUE_PREFIX),
    cache: new DynamoResponseCache(ddb, env.DEEPQUEUE_PREFIX),
    // retries: 0 — a transient failure goes back to the queue with back-off (visibility), not a sleep here.
    inference: createInferenceClient({
      baseUrl: env.INFERENCE_URL,
      apiKey: env.INFERENCE_API_KEY,
      retries: 0,
      timeoutMs: env.DEEPQUEUE_MODEL_TIMEOUT_MS,
      maxConcurrency: env.DEEPQUEUE_BATCHER_MAX_IN_FLIGHT,
    }),
    // Its own client (and circuit breaker): the main model failing must not block the fallback.
    fallbackInference: createInferenceClient({
      baseUrl: env.DEEPQUEUE_FALLBACK_INFERENCE_URL ?? env.INFERENCE_URL,
      apiKey: env.INFERENCE_API_KEY,
      retries: 0,
      timeoutMs: env.DEEPQUEUE_MODEL_TIMEOUT_MS,
    }),
    options: {
      batchSize: env.DEEPQUEUE_BATCH_SIZE,
      maxInFlight: env.DEEPQUEUE_BATCHER_MAX_IN_FLIGHT,
      fallbackModel: env.DEEPQUEUE_FALLBACK_MODEL,
      staticReply: env.DEEPQUEUE_STATIC_REPLY,
      degradeMarginSeconds: env.DEEPQUEUE_DEGRADE_MARGIN_SECONDS,
      retryBaseSeconds: env.DEEPQUEUE_RETRY_BASE_SECONDS,
      retryMaxSeconds: env.DEEPQUEUE_RETRY_MAX_SECONDS,
      cacheTtlSeconds: env.DEEPQUEUE_CACHE_TTL_SECONDS,
      replyIntervalMs: env.DEEPQUEUE_REPLY_INTERVAL_MS,
    },
    logger: createLogger({ name: "batcher", level: env.LOG_LEVEL }),
  };
}

let lambdaHandler: ReturnType<typeof createBatcherHandler> | undefined;

/** The Lambda entry point: dependencies built once per container, on the first event (importing parses no environment). */
export const handler = (event: SQSEvent, context: Context) => {
  lambdaHandler ??= createBatcherHandler(batcherDepsFromEnv());
  return lambdaHandler(event, context);
};
