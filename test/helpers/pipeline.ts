import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import {
  type AcceptedRequest,
  buildEvent,
  type DeliveryRequestedEvent,
  EVENT_TYPES,
} from "../../events/index.ts";
import type { BatcherOptions } from "../../functions/batcher/config.ts";
import { createBatcherHandler } from "../../functions/batcher/handler.ts";
import type { CacheOptions } from "../../functions/cache/cache.ts";
import { summarizationMessages } from "../../functions/cache/context.ts";
import { createCacheHandler } from "../../functions/cache/handler.ts";
import { createSqsWorker, type SqsHandler, type SqsWorker } from "../../functions/runtime/sqs-worker.ts";
import { newEventId, newRequestId, newTraceparent } from "../../functions/shared/ids.ts";
import { createInferenceClient, type InferenceClient } from "../../functions/shared/inference-client.ts";
import { createLogger } from "../../functions/shared/logger.ts";
import { dlqName, queueName } from "../../functions/shared/names.ts";
import { provisionTenant } from "../../functions/shared/provision.ts";
import { QueueUrls } from "../../functions/shared/queues.ts";
import { DynamoResponseCache } from "../../functions/shared/stores/cache.ts";
import { DynamoConversationStore } from "../../functions/shared/stores/conversations.ts";
import { DynamoRequestStore, type StoredRequest } from "../../functions/shared/stores/requests.ts";
import { type DegradationSettings, DynamoTenantStore } from "../../functions/shared/stores/tenants.ts";
import { DynamoUsageStore } from "../../functions/shared/stores/usage.ts";
import { countPromptTokens } from "../../functions/shared/tokenizer.ts";
import type { SimOptions } from "../../local/sim/options.ts";
import { type Simulator, startSimulator } from "../../local/sim/server.ts";
import { startTestStack, type TestStack } from "./emulators.ts";

/**
 * cache + batcher workers in-process over the emulators and the simulator,
 * with the delivery queue left for the test to read (one result per request
 * is then checkable). Requests are produced as ingest would: a record, then
 * a requestAccepted event.
 */
export interface PipelineOptions {
  sim?: Partial<SimOptions>;
  cache?: CacheOptions;
  batcher?: BatcherOptions;
  /** Visibility timeout the workers receive with. @default 30 */
  visibilitySeconds?: number;
  /** Start the workers now. @default true */
  start?: boolean;
  batcherConcurrency?: number;
}

export interface Pipeline {
  stack: TestStack;
  sim: Simulator;
  requests: DynamoRequestStore;
  tenants: DynamoTenantStore;
  conversations: DynamoConversationStore;
  cache: DynamoResponseCache;
  inference: InferenceClient;
  urls: {
    requests: string;
    inference: string;
    /** The batch lane (batch lines), which the batcher serves after `inference`. */
    inferenceBatch: string;
    delivery: string;
    requestsDlq: string;
    inferenceDlq: string;
  };
  cacheHandler: SqsHandler;
  batcherHandler: SqsHandler;
  workers: SqsWorker[];
  startWorkers(): Promise<void>;
  stopWorkers(): Promise<void>;
  worker(name: "cache" | "batcher", handler?: SqsHandler, extra?: { visibilitySeconds?: number }): SqsWorker;
  tenant(
    name: string,
    settings?: { cacheOptIn?: boolean; degradation?: Partial<DegradationSettings> },
  ): Promise<void>;
  submit(
    tenant: string,
    body: Partial<AcceptedRequest> & ({ prompt: string } | { messages: AcceptedRequest["messages"] }),
  ): Promise<AcceptedRequest>;
  waitTerminal(id: string, timeoutMs?: number): Promise<StoredRequest>;
  /**
   * Every finished request handed on so far, as delivery messages: read and deleted from the
   * delivery queue (requests with a callback) and from the tenants' result queues (the rest, which
   * the batcher and the cache stage publish directly; wrapped here in the same shape).
   */
  deliveries(): Promise<DeliveryRequestedEvent[]>;
  stop(): Promise<void>;
}

const silent = createLogger({ level: "silent" });

export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  const stack = await startTestStack();
  const sim = await startSimulator({ port: 0, host: "127.0.0.1", timeScale: 0.02, ...options.sim });
  const requests = new DynamoRequestStore(stack.ddb, stack.prefix);
  const tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  const conversations = new DynamoConversationStore(stack.ddb, stack.prefix);
  const cache = new DynamoResponseCache(stack.ddb, stack.prefix);
  const queueUrls = new QueueUrls(stack.sqs);
  const urls = {
    requests: await queueUrls.get(queueName(stack.prefix, "requests")),
    inference: await queueUrls.get(queueName(stack.prefix, "inference")),
    inferenceBatch: await queueUrls.get(queueName(stack.prefix, "inference-batch")),
    delivery: await queueUrls.get(queueName(stack.prefix, "delivery")),
    requestsDlq: await queueUrls.get(dlqName(queueName(stack.prefix, "requests"))),
    inferenceDlq: await queueUrls.get(dlqName(queueName(stack.prefix, "inference"))),
  };
  const inference = createInferenceClient({
    baseUrl: sim.url,
    retries: 0,
    timeoutMs: 10_000,
    breakerHalfOpenAfterMs: 300,
  });
  const fallbackInference = createInferenceClient({ baseUrl: sim.url, retries: 0, timeoutMs: 10_000 });
  const batcherOptions: BatcherOptions = {
    maxInFlight: 64,
    fallbackModel: "deepseek-chat-small",
    staticReply: "static reply for tests",
    degradeMarginSeconds: 2,
    retryBaseSeconds: 1,
    retryMaxSeconds: 2,
    ...options.batcher,
  };
  const common = { sqs: stack.sqs, queueUrls, prefix: stack.prefix, requests, tenants, conversations, cache };
  const cacheHandler = createCacheHandler({
    ...common,
    usage: new DynamoUsageStore(stack.ddb, stack.prefix),
    summarize: async (transcript) =>
      (
        await fallbackInference.chat({
          model: "deepseek-chat-small",
          messages: summarizationMessages(transcript, 30),
          max_tokens: 48,
          temperature: 0,
        })
      ).text,
    responses: cache,
    config: { coalesceTimeoutSeconds: 60, ...options.cache },
    logger: silent,
  }) as unknown as SqsHandler;
  const batcherHandler = createBatcherHandler({
    ...common,
    inference,
    fallbackInference,
    options: batcherOptions,
    logger: silent,
  }) as unknown as SqsHandler;
  const visibility = options.visibilitySeconds ?? 30;
  const workers: SqsWorker[] = [];
  /** Result queues of the tenants made through tenant(), by tenant. */
  const resultQueues = new Map<string, string>();

  function worker(
    name: "cache" | "batcher",
    handler?: SqsHandler,
    extra: { visibilitySeconds?: number } = {},
  ) {
    const w = createSqsWorker({
      name,
      sqs: stack.sqs,
      // As `deepqueue serve batcher` does: interactive work first, then the batch lane.
      queues:
        name === "cache" ? [{ url: urls.requests }] : [{ url: urls.inference }, { url: urls.inferenceBatch }],
      handler: handler ?? (name === "cache" ? cacheHandler : batcherHandler),
      waitTimeSeconds: 1,
      visibilityTimeoutSeconds: extra.visibilitySeconds ?? visibility,
      batchSize: 10,
      maxBatchingWindowMs: name === "batcher" ? 20 : 0,
      concurrency: name === "batcher" ? (options.batcherConcurrency ?? 7) : 4,
      drainGraceMs: 2000,
      logger: silent,
    });
    workers.push(w);
    return w;
  }

  const pipeline: Pipeline = {
    stack,
    sim,
    requests,
    tenants,
    conversations,
    cache,
    inference,
    urls,
    cacheHandler,
    batcherHandler,
    workers,
    worker,
    async startWorkers() {
      await worker("cache").start();
      await worker("batcher").start();
    },
    async stopWorkers() {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    },
    async tenant(name, settings = {}) {
      const provisioned = await provisionTenant(
        { sqs: stack.sqs, tenants, prefix: stack.prefix },
        { tenant: name, dailyRequests: null },
      );
      resultQueues.set(name, provisioned.result_queue_url);
      if (settings.cacheOptIn !== undefined || settings.degradation) {
        await tenants.update(name, {
          ...(settings.cacheOptIn !== undefined ? { cache_opt_in: settings.cacheOptIn } : {}),
          ...(settings.degradation
            ? { degradation: { cache: true, fallback: true, static: true, ...settings.degradation } }
            : {}),
        });
      }
    },
    async submit(tenant, body) {
      const now = Date.now();
      const accepted: AcceptedRequest = {
        id: newRequestId(),
        tenant,
        model: "deepseek-chat",
        max_tokens: 32,
        temperature: 0.7,
        cache: true,
        prompt_tokens: countPromptTokens(body as { prompt?: string; messages?: AcceptedRequest["messages"] }),
        created_at: new Date(now).toISOString(),
        deadline_at: new Date(now + 900_000).toISOString(),
        ...body,
      } as AcceptedRequest;
      const traceparent = newTraceparent();
      await requests.create(accepted, { traceparent });
      const event = buildEvent({
        id: newEventId(),
        type: EVENT_TYPES.requestAccepted,
        subject: accepted.id,
        data: accepted,
        traceparent,
      });
      await stack.sqs.send(
        new SendMessageCommand({ QueueUrl: urls.requests, MessageBody: JSON.stringify(event) }),
      );
      return accepted;
    },
    async waitTerminal(id, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const stored = await requests.get(id);
        if (stored && (stored.status === "completed" || stored.status === "failed")) return stored;
        if (Date.now() > end)
          throw new Error(`request ${id} is still ${stored?.status} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async deliveries() {
      const { DeleteMessageCommand } = await import("@aws-sdk/client-sqs");
      const drain = async (queueUrl: string): Promise<unknown[]> => {
        const bodies: unknown[] = [];
        for (;;) {
          const got = await stack.sqs.send(
            new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
          );
          if (!got.Messages?.length) return bodies;
          for (const m of got.Messages) {
            bodies.push(JSON.parse(m.Body!));
            await stack.sqs.send(
              new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle! }),
            );
          }
        }
      };
      const out = (await drain(urls.delivery)) as DeliveryRequestedEvent[];
      for (const [tenant, queueUrl] of resultQueues) {
        for (const event of (await drain(queueUrl)) as DeliveryRequestedEvent["data"]["event"][]) {
          out.push({
            ...event,
            type: EVENT_TYPES.deliveryRequested,
            data: { tenant, event },
          } as DeliveryRequestedEvent);
        }
      }
      return out;
    },
    async stop() {
      await pipeline.stopWorkers();
      await sim.stop();
      await stack.stop();
    },
  };
  if (options.start !== false) await pipeline.startWorkers();
  return pipeline;
}
