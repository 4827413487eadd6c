import type { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import {
  type ChatMessage,
  type ErrorDetail,
  type InferenceRequest,
  inferenceRequestedEventSchema,
  type Result,
  type ResultSource,
} from "../../events/index.ts";
import { FAILURE_CODES } from "../shared/errors.ts";
import {
  type CallOptions,
  type InferenceClient,
  InferenceError,
  isRetryableInferenceError,
} from "../shared/inference-client.ts";
import { publicFailureMessage } from "../shared/inference-errors.ts";
import type { Logger } from "../shared/logger.ts";
import { counter, histogram } from "../shared/metrics.ts";
import { dlqName, queueName } from "../shared/names.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { QUEUE_DEFAULTS } from "../shared/resources.ts";
import { handOn, ResultPublisher } from "../shared/results.ts";
import {
  attemptNumber,
  BatchSender,
  deferRecord,
  PoisonMessageError,
  parseRecord,
  RetryLaterError,
  receiveCount,
  sendToDlq,
} from "../shared/sqs-records.ts";
import { type CacheStore, lastAnswerKey } from "../shared/stores/cache.ts";
import type { ConversationStore } from "../shared/stores/conversations.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import type { Tenant, TenantStore } from "../shared/stores/tenants.ts";
import { countTokens } from "../shared/tokenizer.ts";
import {
  ATTR,
  endModelSpan,
  endSpan,
  type ModelCall,
  type Span,
  spanTraceparent,
  startConsumerSpan,
  startModelSpan,
} from "../shared/tracing.ts";
import { Semaphore } from "./semaphore.ts";

/**
 * The batcher: inference queue → micro-batches of compatible requests (same
 * model, max_tokens, temperature; plain prompts apart from chat) → one
 * `/v1/completions` call with a prompt array per prompt batch, concurrent chat
 * calls otherwise, at most K requests in flight → the answer stored (request
 * record, cache, conversation turn) and sent to the delivery queue.
 *
 * The SQS batch *is* the micro-batch: the worker receives up to
 * `batchSize` messages, waiting at most `batchWaitMs` to fill it
 * (Lambda's batching window), and enough batches run at once to keep K requests in
 * flight. The handler stays Lambda-shaped: one SQSEvent in, one
 * SQSBatchResponse out, nothing held across invocations.
 */

export interface BatcherConfig {
  batchSize: number;
  maxInFlight: number;
  fallbackModel?: string | undefined;
  staticReply: string;
  degradeMarginSeconds: number;
  retryBaseSeconds: number;
  retryMaxSeconds: number;
  cacheTtlSeconds: number;
}

export interface BatcherDeps {
  sqs: SQSClient;
  queueUrls: QueueUrls;
  prefix: string;
  requests: RequestStore;
  tenants: Pick<TenantStore, "get">;
  conversations: ConversationStore;
  cache: CacheStore;
  /** Built with retries: 0 — transient failures retry through the queue, never by sleeping here. */
  inference: InferenceClient;
  /** The fallback model's client (its own circuit breaker); defaults to `inference`. */
  fallbackInference?: InferenceClient | undefined;
  config: BatcherConfig;
  logger: Logger;
}

const metrics = {
  batchSize: histogram(
    "deepqueue_batch_size",
    "Requests per model call (a completions prompt array, or 1 for chat)",
    ["endpoint"],
    [1, 2, 3, 4, 5, 6, 8, 10, 16, 32, 64],
  ),
  modelLatency: histogram("deepqueue_model_latency_seconds", "Model call latency", [
    "model",
    "endpoint",
    "outcome",
  ]),
  degradations: counter(
    "deepqueue_degradations_total",
    "Requests answered (or failed) by a degradation level",
    ["level"],
  ),
  retries: counter(
    "deepqueue_retries_total",
    "Requests sent back to the queue after a transient model error",
  ),
  outcomes: counter(
    "deepqueue_batcher_requests_total",
    "Requests finished by the batcher, by result source",
    ["source"],
  ),
};

/** One request ready for the model. */
interface Item {
  record: SQSRecord;
  request: InferenceRequest;
  tenant: Tenant | undefined;
  /** The request's span in this function (tracing on), ended when its outcome is known. */
  span?: Span | undefined;
}

type Answer = Pick<Result, "text" | "finish_reason" | "usage">;

type Settled = { ok: true; value: string } | { ok: false; error: unknown };

const TENANT_CACHE_MS = 30_000;

function isPlainPrompt(request: InferenceRequest): boolean {
  return request.prompt !== undefined && request.context === undefined;
}

/** The messages a chat call sends: the assembled context, else the request's own. */
function chatMessages(request: InferenceRequest): ChatMessage[] {
  return request.context ?? request.messages ?? [{ role: "user", content: request.prompt ?? "" }];
}

/** Requests that may share one model call. */
function groupKey(request: InferenceRequest): string {
  return JSON.stringify([
    isPlainPrompt(request) ? "prompt" : "chat",
    request.model,
    request.max_tokens,
    request.temperature,
  ]);
}

/** @example const batcher = createBatcher(deps); const outcomes = await batcher.handleBatch(event); */
export function createBatcher(deps: BatcherDeps) {
  const { requests, cache, config, logger } = deps;
  const slots = new Semaphore(config.maxInFlight);
  const tenantCache = new Map<string, { at: number; tenant: Tenant | undefined }>();

  async function tenantOf(name: string): Promise<Tenant | undefined> {
    const hit = tenantCache.get(name);
    if (hit && Date.now() - hit.at < TENANT_CACHE_MS) return hit.tenant;
    const tenant = await deps.tenants.get(name);
    tenantCache.set(name, { at: Date.now(), tenant });
    return tenant;
  }

  const queue = async (name: string) => ({ sqs: deps.sqs, queueUrl: await deps.queueUrls.get(name) });
  const inferenceQueue = queueName(deps.prefix, "inference");
  // A batch's results go out together, as SendMessageBatch calls.
  const handOnTo = {
    delivery: new BatchSender(deps.sqs, () => deps.queueUrls.get(queueName(deps.prefix, "delivery"))),
    results: new ResultPublisher(deps.sqs, deps.queueUrls, deps.prefix),
  };

  /** After a terminal transition (won or lost): cache, conversation, marker, delivery. Safe to repeat. */
  async function afterTerminal(
    item: Pick<Item, "request" | "span">,
    stored: StoredRequest,
    won: boolean,
  ): Promise<void> {
    const { request } = item;
    const result = stored.result;
    if (stored.status === "completed" && result) {
      if (won && result.source === "model") {
        await cache.put({
          key: request.cache_key,
          lastKey: lastAnswerKey({ tenant: request.tenant, model: request.model, ...promptOf(request) }),
          answer: {
            ...pick(result),
            request_id: request.id,
            created_at: stored.completed_at ?? new Date().toISOString(),
          },
          ttlSeconds: config.cacheTtlSeconds,
        });
      }
      if (request.conversation_id) {
        await deps.conversations.appendTurn(request.tenant, request.conversation_id, {
          request_id: request.id,
          messages: request.messages ?? [{ role: "user", content: request.prompt ?? "" }],
          answer: result.text,
          created_at: stored.completed_at ?? new Date().toISOString(),
        });
      }
    }
    // Followers of a coalesced request find the fresh answer in the cache; the marker is only
    // released when there is none (a failure or a degraded answer), so they stop waiting.
    const answered = stored.status === "completed" && stored.result?.source === "model";
    if (request.cache_key && !answered) await cache.release(request.cache_key, request.id);
    await handOn(stored, handOnTo, spanTraceparent(item.span));
  }

  /** One line per finished request, with the source design's fields (prompt length, response time). */
  function logFinished(item: Item, stored: StoredRequest, applied: boolean): void {
    logger.info(
      {
        request_id: item.request.id,
        tenant: item.request.tenant,
        conversation_id: item.request.conversation_id,
        model: item.request.model,
        status: stored.status,
        source: stored.result?.source,
        error_code: stored.error?.code,
        prompt_tokens: stored.result?.usage.prompt_tokens ?? item.request.prompt_tokens,
        completion_tokens: stored.result?.usage.completion_tokens,
        response_time_ms: Date.now() - Date.parse(item.request.created_at),
        duplicate: !applied,
      },
      "request finished",
    );
  }

  async function complete(item: Item, answer: Answer, source: ResultSource): Promise<string> {
    const { applied, record } = await requests.complete(item.request.id, { ...answer, source });
    await afterTerminal(item, record, applied);
    if (applied) metrics.outcomes.inc({ source });
    logFinished(item, record, applied);
    return applied ? source : `duplicate:${record.status}`;
  }

  async function fail(item: Item, error: ErrorDetail): Promise<string> {
    const { applied, record } = await requests.fail(item.request.id, error);
    await afterTerminal(item, record, applied);
    if (applied) metrics.outcomes.inc({ source: "failed" });
    logFinished(item, record, applied);
    return applied ? `failed:${error.code}` : `duplicate:${record.status}`;
  }

  /** One model call: a slot of the K in flight, its latency and batch size, and its span (tracing on). */
  async function callModel<
    T extends { id: string; model: string; usage: { prompt_tokens: number; completion_tokens: number } },
  >(
    call: ModelCall,
    fn: (options: CallOptions | undefined) => Promise<T>,
    finishReasons: (value: T) => string[],
  ) {
    const { model, served } = call;
    const endpoint = call.operation === "chat" ? "chat" : "completions";
    const size = served.length;
    const release = await slots.acquire(size);
    const started = performance.now();
    const span = startModelSpan(call);
    let outcome = "error";
    try {
      // The model server gets the model span's context (a traced vLLM continues the trace).
      const value = await fn(span ? { traceparent: spanTraceparent(span) } : undefined);
      outcome = "ok";
      endModelSpan(span, {
        id: value.id,
        model: value.model,
        finishReasons: finishReasons(value),
        inputTokens: value.usage.prompt_tokens,
        outputTokens: value.usage.completion_tokens,
      });
      return value;
    } catch (error) {
      endSpan(span, error);
      throw error;
    } finally {
      release();
      metrics.modelLatency.observe({ model, endpoint, outcome }, (performance.now() - started) / 1000);
      metrics.batchSize.observe({ endpoint }, size);
    }
  }

  async function chat(
    item: Pick<Item, "request" | "span">,
    model: string,
    client = deps.inference,
  ): Promise<Answer> {
    const { request } = item;
    const out = await callModel(
      {
        operation: "chat",
        model,
        baseUrl: client.baseUrl,
        maxTokens: request.max_tokens,
        temperature: request.temperature,
        served: [item.span],
      },
      (options) =>
        client.chat(
          {
            model,
            messages: chatMessages(request),
            max_tokens: request.max_tokens,
            temperature: request.temperature,
          },
          options,
        ),
      (value) => [value.finish_reason],
    );
    return { text: out.text, finish_reason: out.finish_reason, usage: pickUsage(out.usage) };
  }

  /** One completions call for every prompt; one answer per prompt, in order. */
  async function completions(
    items: Array<Pick<Item, "request" | "span">>,
    model: string,
    client = deps.inference,
  ): Promise<Answer[]> {
    const batch = items.map((i) => i.request);
    const first = batch[0]!;
    const out = await callModel(
      {
        operation: "text_completion",
        model,
        baseUrl: client.baseUrl,
        maxTokens: first.max_tokens,
        temperature: first.temperature,
        served: items.map((i) => i.span),
      },
      (options) =>
        client.completions(
          {
            model,
            prompt: batch.map((r) => r.prompt ?? ""),
            max_tokens: first.max_tokens,
            temperature: first.temperature,
          },
          options,
        ),
      (value) => value.choices.map((c) => c.finish_reason),
    );
    return out.choices.map((choice, i) => ({
      text: choice.text,
      finish_reason: choice.finish_reason,
      // The server reports totals per call; per prompt, its tokens as ingest counted them (as vLLM
      // does: BOS + prompt, same tokenizer) and the answer's tokens.
      usage:
        batch.length === 1
          ? pickUsage(out.usage)
          : {
              prompt_tokens: batch[i]!.prompt_tokens,
              completion_tokens: countTokens(choice.text),
            },
    }));
  }

  /**
   * The degradation ladder (docs/api.md#the-flow), each level switchable per tenant: the last answer to the
   * same prompt (any age) → the fallback model → the static reply → failed.
   */
  async function degrade(item: Item, reason: "deadline" | "unavailable", cause?: unknown): Promise<string> {
    const { request, tenant } = item;
    const levels = tenant?.degradation ?? { cache: true, fallback: true, static: true };
    const log = logger.child({ request_id: request.id, tenant: request.tenant, reason });
    if (levels.cache) {
      const last = await cache.getLast(
        lastAnswerKey({ tenant: request.tenant, model: request.model, ...promptOf(request) }),
      );
      if (last) {
        metrics.degradations.inc({ level: "cache" });
        log.warn("degraded to the last cached answer");
        return complete(item, pick(last), "cache");
      }
    }
    if (levels.fallback && config.fallbackModel && config.fallbackModel !== request.model) {
      try {
        const client = deps.fallbackInference ?? deps.inference;
        const answer = isPlainPrompt(request)
          ? (await completions([item], config.fallbackModel, client))[0]!
          : await chat(item, config.fallbackModel, client);
        metrics.degradations.inc({ level: "fallback" });
        log.warn({ model: config.fallbackModel }, "degraded to the fallback model");
        return complete(item, answer, "fallback");
      } catch (error) {
        log.warn({ err: error }, "the fallback model failed too");
      }
    }
    if (levels.static) {
      metrics.degradations.inc({ level: "static" });
      log.warn("degraded to the static reply");
      return complete(
        item,
        {
          text: config.staticReply,
          finish_reason: "stop",
          usage: { prompt_tokens: 0, completion_tokens: 0 },
        },
        "static",
      );
    }
    metrics.degradations.inc({ level: "failed" });
    const deadlinePassed = Date.now() >= Date.parse(request.deadline_at);
    // The tenant sees a fixed message; the model server's text and address stay in the logs.
    logger.warn({ request_id: item.request.id, err: cause }, "no answer and no degradation left");
    const code =
      deadlinePassed || reason === "deadline"
        ? FAILURE_CODES.deadlineExceeded
        : FAILURE_CODES.modelUnavailable;
    return fail(item, { code, message: publicFailureMessage(cause, code) });
  }

  /** A retryable model error: back to the queue with back-off, or down the ladder when time is short. */
  async function transient(item: Item, error: unknown): Promise<string> {
    const attempt = attemptNumber(item.record);
    let delay = Math.min(config.retryMaxSeconds, config.retryBaseSeconds * 2 ** (attempt - 1));
    if (error instanceof InferenceError && error.retryAfterMs !== undefined) {
      delay = Math.max(delay, Math.ceil(error.retryAfterMs / 1000));
    }
    const retryAt = Date.now() + delay * 1000;
    if (retryAt >= Date.parse(item.request.deadline_at) - config.degradeMarginSeconds * 1000) {
      return degrade(item, "unavailable", error);
    }
    const how = await deferRecord(await queue(queueName(deps.prefix, "inference")), item.record, delay);
    metrics.retries.inc();
    logger.info(
      { request_id: item.request.id, attempt, retry_in_s: delay, err: error },
      "transient model error; retrying through the queue",
    );
    if (how === "retry") throw new RetryLaterError(`retry in ${delay} s`, { cause: error });
    return "requeued";
  }

  /** Permanent (4xx) errors fail at once; the rest are transient. */
  function onModelError(item: Item, error: unknown): Promise<string> {
    if (error instanceof InferenceError && !error.retryable) {
      logger.warn({ request_id: item.request.id, err: error }, "the model server refused the request");
      return fail(item, { code: error.failureCode, message: publicFailureMessage(error) });
    }
    if (isRetryableInferenceError(error)) return transient(item, error);
    throw error;
  }

  async function runPromptBatch(items: Item[]): Promise<Settled[]> {
    try {
      const answers = await completions(items, items[0]!.request.model);
      return Promise.all(items.map((item, n) => settle(complete(item, answers[n]!, "model"))));
    } catch (error) {
      // A permanent error of one prompt fails the whole array (vLLM checks each): find it alone.
      if (items.length > 1 && error instanceof InferenceError && !error.retryable) {
        return (await Promise.all(items.map((item) => runPromptBatch([item])))).flat();
      }
      return Promise.all(items.map((item) => settle(onModelError(item, error))));
    }
  }

  async function runChat(item: Item): Promise<Settled> {
    try {
      return await settle(complete(item, await chat(item, item.request.model), "model"));
    } catch (error) {
      return settle(onModelError(item, error));
    }
  }

  /**
   * Parse, load, and settle what needs no model call; returns the item when it does. The
   * request's span (tracing on) starts here; it ends here unless an item is returned.
   */
  async function prepare(record: SQSRecord): Promise<Item | string> {
    let event: ReturnType<typeof inferenceRequestedEventSchema.parse>;
    try {
      event = parseRecord(record, inferenceRequestedEventSchema);
    } catch (error) {
      if (!(error instanceof PoisonMessageError)) throw error;
      logger.warn({ message_id: record.messageId, reason: error.message }, "poison message to the DLQ");
      await sendToDlq(await queue(dlqName(queueName(deps.prefix, "inference"))), record, error.message);
      return "poison";
    }
    const request = event.data;
    const span = startConsumerSpan("batcher", inferenceQueue, record.messageId, event.traceparent, request);
    if (!span) return load(record, request, undefined);
    try {
      const prepared = await load(record, request, span);
      if (typeof prepared === "string") endSpan(span, undefined, { [ATTR.outcome]: prepared });
      return prepared;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }

  async function load(
    record: SQSRecord,
    request: InferenceRequest,
    span: Span | undefined,
  ): Promise<Item | string> {
    // A first delivery needs no read: the message carries the request, and complete() is
    // conditional (a repeat gets the winner back). A redelivery may follow a crash past the
    // terminal write: then the effects are finished again without a model call.
    if (attemptNumber(record) > 1) {
      const stored = await requests.get(request.id);
      if (!stored) {
        logger.warn({ request_id: request.id }, "no request record; dropping the message");
        return "dropped";
      }
      if (stored.status === "completed" || stored.status === "failed") {
        await afterTerminal({ request, span }, stored, false);
        return "replayed";
      }
    }
    const item: Item = { record, request, tenant: await tenantOf(request.tenant), span };
    if (Date.now() >= Date.parse(request.deadline_at)) return degrade(item, "deadline");
    // The last receive before the redrive policy dead-letters it: earlier attempts died without a
    // trace (crashes, timeouts past the visibility), so answer down the ladder rather than lose it.
    if (receiveCount(record) >= QUEUE_DEFAULTS.maxReceiveCount) return degrade(item, "unavailable");
    return item;
  }

  /** Handles one SQS batch; returns each record's outcome (an error = a batch item failure). */
  async function handleBatch(event: SQSEvent): Promise<Map<string, Settled>> {
    const outcomes = new Map<string, Settled>();
    const ready: Item[] = [];
    await Promise.all(
      event.Records.map(async (record) => {
        const prepared = await settleValue(prepare(record));
        if (prepared.ok && typeof prepared.value !== "string") ready.push(prepared.value);
        else outcomes.set(record.messageId, prepared as Settled);
      }),
    );
    // `processing` for every request going to the model: one BatchWriteItem of markers, alongside
    // the model calls (a status for GET, never a reason to fail the request).
    const marked =
      ready.length > 0
        ? requests
            .markProcessing(ready.map((item) => item.request.id))
            .catch((error) => logger.warn({ err: error }, "could not mark requests as processing"))
        : undefined;
    const groups = new Map<string, Item[]>();
    for (const item of ready) {
      const key = groupKey(item.request);
      groups.set(key, [...(groups.get(key) ?? []), item]);
    }
    const runs: Promise<void>[] = [];
    for (const items of groups.values()) {
      if (isPlainPrompt(items[0]!.request)) {
        for (let i = 0; i < items.length; i += config.batchSize) {
          const chunk = items.slice(i, i + config.batchSize);
          runs.push(
            runPromptBatch(chunk).then((settled) => {
              for (const [n, item] of chunk.entries()) {
                outcomes.set(item.record.messageId, settled[n]!);
                endItemSpan(item, settled[n]!);
              }
            }),
          );
        }
      } else {
        for (const item of items) {
          runs.push(
            runChat(item).then((settled) => {
              outcomes.set(item.record.messageId, settled);
              endItemSpan(item, settled);
            }),
          );
        }
      }
    }
    await Promise.all(runs);
    await marked;
    return outcomes;
  }

  return { handleBatch };
}

function endItemSpan(item: Item, settled: Settled): void {
  if (!item.span) return;
  if (settled.ok) endSpan(item.span, undefined, { [ATTR.outcome]: settled.value });
  else endSpan(item.span, settled.error);
}

async function settle(promise: Promise<string>): Promise<Settled> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

async function settleValue<T>(
  promise: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

function promptOf(request: InferenceRequest): { prompt?: string; messages?: ChatMessage[] } {
  if (isPlainPrompt(request)) return { prompt: request.prompt ?? "" };
  return { messages: chatMessages(request) };
}

function pick(answer: Answer): Answer {
  return { text: answer.text, finish_reason: answer.finish_reason, usage: pickUsage(answer.usage) };
}

function pickUsage(usage: { prompt_tokens: number; completion_tokens: number }) {
  return { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens };
}
