import type { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSEvent, SQSRecord } from "aws-lambda";
import {
  type ErrorDetail,
  type InferenceRequest,
  inferenceRequestedEventSchema,
  type ResultSource,
} from "../../events/index.ts";
import {
  type InferenceClient,
  InferenceError,
  isRetryableInferenceError,
} from "../shared/inference-client.ts";
import { publicFailureMessage } from "../shared/inference-errors.ts";
import type { Logger } from "../shared/logger.ts";
import { counter } from "../shared/metrics.ts";
import { dlqName, queueName } from "../shared/names.ts";
import { withoutUndefined } from "../shared/options.ts";
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
import { lastAnswerKey, type ResponseCache } from "../shared/stores/cache.ts";
import type { ConversationStore } from "../shared/stores/conversations.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import { TenantLookup } from "../shared/stores/tenant-lookup.ts";
import type { Tenant, TenantStore } from "../shared/stores/tenants.ts";
import { ATTR, endSpan, type Span, spanTraceparent, startConsumerSpan } from "../shared/tracing.ts";
import { BATCHER_DEFAULTS, type BatcherOptions, type BatcherSettings } from "./config.ts";
import { DegradationLadder, RetrySchedule } from "./degradation.ts";
import { planRuns, type Run } from "./grouping.ts";
import { type Answer, type Item, pickAnswer, promptOf } from "./item.ts";
import { ModelCalls } from "./model-calls.ts";

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
 *
 * A request whose caller waits with `reply.stream` (the OpenAI-compatible routes) is served alone,
 * with a streaming model call, and its text goes to the caller's reply queue as it comes
 * (ReplyStream: at most one `delta` per `replyIntervalMs`); its `done` follows from handOn, like
 * every request with `reply`. Until the first delta is sent, failures take the usual way (retry
 * through the queue, breaker, degradation ladder, answered whole in `done`); after it, nothing that
 * would contradict the text shown: the request fails with `model_unavailable`
 * (StreamInterruptedError). Only a first attempt streams: a redelivered request may have shown
 * text in an attempt that died, so it is answered whole.
 */

export interface BatcherDeps {
  sqs: SQSClient;
  queueUrls: QueueUrls;
  prefix: string;
  requests: RequestStore;
  tenants: Pick<TenantStore, "get">;
  conversations: ConversationStore;
  cache: ResponseCache;
  /** Built with retries: 0 — transient failures retry through the queue, never by sleeping here. */
  inference: InferenceClient;
  /** The fallback model's client (its own circuit breaker); defaults to `inference`. */
  fallbackInference?: InferenceClient | undefined;
  /** Tunables; the rest come from BATCHER_DEFAULTS. */
  options?: BatcherOptions | undefined;
  logger: Logger;
}

/** A record's outcome: fulfilled with what happened, rejected = a batch item failure. */
export type RecordOutcome = PromiseSettledResult<string>;

/** Handles one SQS batch of `<prefix>-inference` at a time. */
export interface BatchHandler {
  /** Each record's outcome, by message id. */
  handleBatch(event: SQSEvent): Promise<Map<string, RecordOutcome>>;
}

const metrics = {
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

/** @example const batcher = new Batcher(deps); const outcomes = await batcher.handleBatch(event); */
export class Batcher implements BatchHandler {
  readonly #deps: BatcherDeps;
  readonly #options: BatcherSettings;
  readonly #models: ModelCalls;
  readonly #ladder: DegradationLadder;
  readonly #schedule: RetrySchedule;
  readonly #tenantLookup: TenantLookup;
  /** A batch's results go out together, as SendMessageBatch calls. */
  readonly #handOnTo: { delivery: BatchSender; results: ResultPublisher };

  constructor(deps: BatcherDeps) {
    this.#deps = deps;
    this.#tenantLookup = new TenantLookup(deps.tenants);
    const options = { ...BATCHER_DEFAULTS, ...withoutUndefined(deps.options ?? {}) };
    this.#options = options;
    const results = new ResultPublisher(deps.sqs, deps.queueUrls, deps.prefix);
    const delivery = new BatchSender(deps.sqs, () => deps.queueUrls.get(queueName(deps.prefix, "delivery")));
    this.#handOnTo = { delivery, results };
    this.#models = new ModelCalls({ ...deps, ...options, replies: results });
    this.#ladder = new DegradationLadder({ ...deps, ...options, models: this.#models });
    this.#schedule = new RetrySchedule(options);
  }

  /** Handles one SQS batch; returns each record's outcome (rejected = a batch item failure). */
  async handleBatch(event: SQSEvent): Promise<Map<string, RecordOutcome>> {
    const outcomes = new Map<string, RecordOutcome>();
    const ready: Item[] = [];
    const prepared = await Promise.allSettled(event.Records.map((record) => this.#prepare(record)));
    for (const [n, settled] of prepared.entries()) {
      if (settled.status === "fulfilled" && typeof settled.value !== "string") ready.push(settled.value);
      else outcomes.set(event.Records[n]!.messageId, settled as RecordOutcome);
    }
    // `processing` for every request going to the model: one BatchWriteItem of markers, alongside
    // the model calls (a status for GET, never a reason to fail the request).
    const marked =
      ready.length > 0
        ? this.#deps.requests
            .markProcessing(ready.map((item) => item.request.id))
            .catch((error) => this.#deps.logger.warn({ err: error }, "could not mark requests as processing"))
        : undefined;
    const runs = planRuns(ready, this.#options.batchSize).map(async (run) => {
      const settled = await this.#run(run);
      for (const [n, item] of run.items.entries()) {
        outcomes.set(item.record.messageId, settled[n]!);
        endItemSpan(item, settled[n]!);
      }
    });
    await Promise.all(runs);
    await marked;
    return outcomes;
  }

  /** One planned model call, and every request of it ended: one outcome per item, in order. */
  async #run(run: Run<Item>): Promise<RecordOutcome[]> {
    if (run.kind === "prompts") return this.#runPrompts(run.items);
    const [item] = run.items;
    const answer =
      run.kind === "stream" ? this.#models.stream(item) : this.#models.chat(item, item.request.model);
    try {
      return [await settle(this.#complete(item, await answer, "model"))];
    } catch (error) {
      return [await settle(this.#onModelError(item, error))];
    }
  }

  async #runPrompts(items: Item[]): Promise<RecordOutcome[]> {
    try {
      const answers = await this.#models.completions(items, items[0]!.request.model);
      // The prompts' effects wait for every terminal write of the array, so that they go out
      // together: one BatchWriteItem of cache entries, one SendMessageBatch of results.
      const together = new Gathering(items.length);
      return Promise.all(
        items.map((item, n) => settle(this.#complete(item, answers[n]!, "model", together))),
      );
    } catch (error) {
      // A permanent error of one prompt fails the whole array (vLLM checks each): find it alone.
      if (items.length > 1 && error instanceof InferenceError && !error.retryable) {
        return (await Promise.all(items.map((item) => this.#runPrompts([item])))).flat();
      }
      return Promise.all(items.map((item) => settle(this.#onModelError(item, error))));
    }
  }

  /**
   * Parse, load, and settle what needs no model call; returns the item when it does. The
   * request's span (tracing on) starts here; it ends here unless an item is returned.
   */
  async #prepare(record: SQSRecord): Promise<Item | string> {
    let request: InferenceRequest;
    let traceparent: string | undefined;
    try {
      ({ data: request, traceparent } = parseRecord(record, inferenceRequestedEventSchema));
    } catch (error) {
      if (!(error instanceof PoisonMessageError)) throw error;
      this.#deps.logger.warn(
        { message_id: record.messageId, reason: error.message },
        "poison message to the DLQ",
      );
      await sendToDlq(
        await this.#queue(dlqName(sourceQueue(record, this.#inferenceQueue))),
        record,
        error.message,
      );
      return "poison";
    }
    const queue = sourceQueue(record, this.#inferenceQueue);
    const span = startConsumerSpan("batcher", queue, record.messageId, traceparent, request);
    if (!span) return this.#load(record, request, undefined);
    try {
      const prepared = await this.#load(record, request, span);
      if (typeof prepared === "string") endSpan(span, undefined, { [ATTR.outcome]: prepared });
      return prepared;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }

  async #load(record: SQSRecord, request: InferenceRequest, span: Span | undefined): Promise<Item | string> {
    // A first delivery needs no read: the message carries the request, and complete() is
    // conditional (a repeat gets the winner back). A redelivery may follow a crash past the
    // terminal write: then the effects are finished again without a model call.
    if (attemptNumber(record) > 1) {
      const stored = await this.#deps.requests.get(request.id);
      if (!stored) {
        this.#deps.logger.warn({ request_id: request.id }, "no request record; dropping the message");
        return "dropped";
      }
      if (stored.status === "completed" || stored.status === "failed") {
        await this.#afterTerminal({ request, span }, stored, false);
        return "replayed";
      }
    }
    const item: Item = { record, request, tenant: await this.#tenant(request.tenant), span };
    if (Date.now() >= Date.parse(request.deadline_at)) return this.#degrade(item, "deadline");
    // The last receive before the redrive policy dead-letters it: earlier attempts died without a
    // trace (crashes, timeouts past the visibility), so answer down the ladder rather than lose it.
    if (receiveCount(record) >= QUEUE_DEFAULTS.maxReceiveCount) return this.#degrade(item, "unavailable");
    return item;
  }

  /** Permanent (4xx) errors fail at once; the rest are transient. */
  #onModelError(item: Item, error: unknown): Promise<string> {
    if (error instanceof InferenceError && !error.retryable) {
      this.#deps.logger.warn(
        { request_id: item.request.id, err: error },
        "the model server refused the request",
      );
      return this.#fail(item, { code: error.failureCode, message: publicFailureMessage(error) });
    }
    if (isRetryableInferenceError(error)) return this.#transient(item, error);
    throw error;
  }

  /** A retryable model error: back to the queue with back-off, or down the ladder when time is short. */
  async #transient(item: Item, error: unknown): Promise<string> {
    const attempt = attemptNumber(item.record);
    const delay = this.#schedule.delaySeconds(attempt, error);
    if (this.#schedule.tooLate(item.request.deadline_at, delay))
      return this.#degrade(item, "unavailable", error);
    const queue = await this.#queue(sourceQueue(item.record, this.#inferenceQueue));
    const how = await deferRecord(queue, item.record, delay);
    metrics.retries.inc();
    this.#deps.logger.info(
      { request_id: item.request.id, attempt, retry_in_s: delay, err: error },
      "transient model error; retrying through the queue",
    );
    if (how === "retry") throw new RetryLaterError(`retry in ${delay} s`, { cause: error });
    return "requeued";
  }

  async #degrade(item: Item, reason: "deadline" | "unavailable", cause?: unknown): Promise<string> {
    const outcome = await this.#ladder.answer(item, reason, cause);
    if ("error" in outcome) return this.#fail(item, outcome.error);
    return this.#complete(item, outcome.answer, outcome.source);
  }

  async #complete(item: Item, answer: Answer, source: ResultSource, together?: Gathering): Promise<string> {
    let written: Awaited<ReturnType<RequestStore["complete"]>>;
    try {
      written = await this.#deps.requests.complete(item.request.id, { ...answer, source });
    } finally {
      await together?.arrive();
    }
    const { applied, record } = written;
    await this.#afterTerminal(item, record, applied);
    if (applied) metrics.outcomes.inc({ source });
    this.#logFinished(item, record, applied);
    return applied ? source : `duplicate:${record.status}`;
  }

  async #fail(item: Item, error: ErrorDetail): Promise<string> {
    const { applied, record } = await this.#deps.requests.fail(item.request.id, error);
    await this.#afterTerminal(item, record, applied);
    if (applied) metrics.outcomes.inc({ source: "failed" });
    this.#logFinished(item, record, applied);
    return applied ? `failed:${error.code}` : `duplicate:${record.status}`;
  }

  /** After a terminal transition (won or lost): cache, conversation, marker, hand-on. Safe to repeat. */
  async #afterTerminal(
    item: Pick<Item, "request" | "span">,
    stored: StoredRequest,
    won: boolean,
  ): Promise<void> {
    const { request } = item;
    if (stored.status === "completed" && stored.result) await this.#remember(request, stored, won);
    // Followers of a coalesced request find the fresh answer in the cache; the marker is only
    // released when there is none (a failure or a degraded answer), so they stop waiting.
    const answered = stored.status === "completed" && stored.result?.source === "model";
    if (request.cache_key && !answered) await this.#deps.cache.release(request.cache_key, request.id);
    await handOn(stored, this.#handOnTo, spanTraceparent(item.span));
  }

  /** A completed answer into the cache (a model's, by the request that won) and the conversation. */
  async #remember(request: InferenceRequest, stored: StoredRequest, won: boolean): Promise<void> {
    const result = stored.result!;
    const at = stored.completed_at ?? new Date().toISOString();
    if (won && result.source === "model") {
      await this.#deps.cache.put({
        key: request.cache_key,
        lastKey: lastAnswerKey({ tenant: request.tenant, model: request.model, ...promptOf(request) }),
        answer: { ...pickAnswer(result), request_id: request.id, created_at: at },
        ttlSeconds: this.#options.cacheTtlSeconds,
      });
    }
    if (request.conversation_id) {
      await this.#deps.conversations.appendTurn(request.tenant, request.conversation_id, {
        request_id: request.id,
        messages: request.messages ?? [{ role: "user", content: request.prompt ?? "" }],
        answer: result.text,
        created_at: at,
      });
    }
  }

  /** One line per finished request, with the source design's fields (prompt length, response time). */
  #logFinished(item: Item, stored: StoredRequest, applied: boolean): void {
    const { request } = item;
    this.#deps.logger.info(
      {
        request_id: request.id,
        tenant: request.tenant,
        conversation_id: request.conversation_id,
        model: request.model,
        status: stored.status,
        source: stored.result?.source,
        error_code: stored.error?.code,
        prompt_tokens: stored.result?.usage.prompt_tokens ?? request.prompt_tokens,
        completion_tokens: stored.result?.usage.completion_tokens,
        response_time_ms: Date.now() - Date.parse(request.created_at),
        duplicate: !applied,
      },
      "request finished",
    );
  }

  #tenant(name: string): Promise<Tenant | undefined> {
    return this.#tenantLookup.get(name);
  }

  get #inferenceQueue(): string {
    return queueName(this.#deps.prefix, "inference");
  }

  async #queue(name: string) {
    return { sqs: this.#deps.sqs, queueUrl: await this.#deps.queueUrls.get(name) };
  }
}

/**
 * Lets `n` concurrent tasks go on together once each has reached the same point (or failed before
 * it): `await gathering.arrive()` resolves when the last one arrives.
 */
class Gathering {
  #left: number;
  readonly #all: Promise<void>;
  #release!: () => void;

  constructor(n: number) {
    this.#left = n;
    this.#all = new Promise<void>((resolve) => {
      this.#release = resolve;
    });
  }

  arrive(): Promise<void> {
    this.#left -= 1;
    if (this.#left <= 0) this.#release();
    return this.#all;
  }
}

/**
 * The queue a record came from (the last part of its eventSourceARN), else `fallback`: a retry or
 * a poison message goes back to its own lane (`<prefix>-inference` or `<prefix>-inference-batch`).
 */
function sourceQueue(record: SQSRecord, fallback: string): string {
  return record.eventSourceARN?.split(":").at(-1) || fallback;
}

function endItemSpan(item: Item, settled: RecordOutcome): void {
  if (!item.span) return;
  if (settled.status === "fulfilled") endSpan(item.span, undefined, { [ATTR.outcome]: settled.value });
  else endSpan(item.span, settled.reason);
}

async function settle(promise: Promise<string>): Promise<RecordOutcome> {
  const [settled] = await Promise.allSettled([promise]);
  return settled!;
}
