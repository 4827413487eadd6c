import type { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import {
  type AcceptedRequest,
  buildEvent,
  type ChatMessage,
  EVENT_TYPES,
  type InferenceRequest,
  type RequestAcceptedEvent,
  requestAcceptedEventSchema,
} from "../../events/index.ts";
import { FAILURE_CODES } from "../shared/errors.ts";
import { newEventId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import { counter } from "../shared/metrics.ts";
import { dlqName, queueName } from "../shared/names.ts";
import type { QueueUrls } from "../shared/queues.ts";
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
import { type CacheStore, cacheAllowed, cacheKey } from "../shared/stores/cache.ts";
import type { ConversationStore } from "../shared/stores/conversations.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import type { Tenant, TenantStore } from "../shared/stores/tenants.ts";
import type { UsageStore } from "../shared/stores/usage.ts";
import { type Span, spanTraceparent, startConsumerSpan, traced, traceparentOf } from "../shared/tracing.ts";
import { assembleContext, turnMessages } from "./context.ts";

/**
 * The cache function: requests queue → (conversation context) → response
 * cache → hit: completed with `source: "cache"` to the delivery queue; miss:
 * identical in-flight requests coalesced, the leader forwarded to the
 * inference queue.
 */

export interface CacheConfig {
  ttlSeconds: number;
  coalesceTimeoutSeconds: number;
  coalesceRecheckSeconds: number;
  conversationRecheckSeconds: number;
  historyTokenBudget: number;
  maxModelLen: number;
  /** Most turns per conversation (DEEPQUEUE_CONVERSATION_MAX_TURNS). @default 1000 */
  maxConversationTurns?: number;
}

export interface CacheDeps {
  sqs: SQSClient;
  queueUrls: QueueUrls;
  prefix: string;
  requests: RequestStore;
  tenants: Pick<TenantStore, "get">;
  conversations: ConversationStore;
  /** Charges a conversation turn's history tokens to the tenant's daily token quota; absent = not charged. */
  usage?: Pick<UsageStore, "charge"> | undefined;
  cache: CacheStore;
  /** Writes a conversation summary (a model call); absent = history is truncated instead. */
  summarize?: ((transcript: ChatMessage[]) => Promise<string>) | undefined;
  config: CacheConfig;
  logger: Logger;
}

/** What happened to one requests-queue message. */
export const CACHE_OUTCOMES = {
  hit: "hit",
  forwarded: "forwarded",
  coalesced: "coalesced",
  waiting: "waiting",
  replayed: "replayed",
  dropped: "dropped",
  poison: "poison",
  /** Refused at the cache stage (a conversation past its turn cap): failed and delivered. */
  refused: "refused",
} as const;
export type CacheOutcome = (typeof CACHE_OUTCOMES)[keyof typeof CACHE_OUTCOMES];

const metrics = {
  cache: counter("deepqueue_cache_total", "Cache lookups by result", ["result"]),
  waits: counter("deepqueue_conversation_waits_total", "Turns sent back to wait for an earlier turn"),
  summaries: counter("deepqueue_conversation_compressions_total", "History compressions by kind", ["kind"]),
};

const TENANT_CACHE_MS = 30_000;

export { cacheAllowed } from "../shared/stores/cache.ts";

/** @example const fn = createCacheFunction(deps); const outcome = await fn.handleRecord(record); */
export function createCacheFunction(deps: CacheDeps) {
  const { requests, cache, config, logger } = deps;
  const tenantCache = new Map<string, { at: number; tenant: Tenant | undefined }>();

  async function tenantOf(name: string): Promise<Tenant | undefined> {
    const hit = tenantCache.get(name);
    if (hit && Date.now() - hit.at < TENANT_CACHE_MS) return hit.tenant;
    const tenant = await deps.tenants.get(name);
    tenantCache.set(name, { at: Date.now(), tenant });
    return tenant;
  }

  const target = async (queue: "requests" | "inference" | "delivery") => ({
    sqs: deps.sqs,
    queueUrl: await deps.queueUrls.get(queueName(deps.prefix, queue)),
  });
  // The records of one SQS batch are handled concurrently: their sends go out as SendMessageBatch calls.
  const sender = (queue: "inference" | "delivery") =>
    new BatchSender(deps.sqs, () => deps.queueUrls.get(queueName(deps.prefix, queue)));
  const senders = { inference: sender("inference"), delivery: sender("delivery") };
  const results = new ResultPublisher(deps.sqs, deps.queueUrls, deps.prefix);
  const requestsQueue = queueName(deps.prefix, "requests");

  /** A finished record to its consumers: the result queue, or the delivery queue for a callback. */
  async function deliver(stored: StoredRequest, span: Span | undefined): Promise<void> {
    await handOn(stored, { results, delivery: senders.delivery }, spanTraceparent(span));
  }

  async function defer(record: SQSRecord, seconds: number, reason: string): Promise<CacheOutcome> {
    const how = await deferRecord(await target("requests"), record, seconds);
    // "requeued": a fresh copy is on the queue, this one may be deleted.
    if (how === "retry") throw new RetryLaterError(reason);
    return CACHE_OUTCOMES.waiting;
  }

  async function answerFromCache(
    request: AcceptedRequest,
    key: string,
    span: Span | undefined,
  ): Promise<boolean> {
    const hit = await cache.get(key);
    if (!hit) return false;
    const { record } = await requests.complete(request.id, {
      text: hit.text,
      finish_reason: hit.finish_reason,
      usage: hit.usage,
      source: "cache",
    });
    if (record.status === "completed" && record.result && request.conversation_id) {
      await deps.conversations.appendTurn(request.tenant, request.conversation_id, {
        request_id: request.id,
        messages: turnMessages(request),
        answer: record.result.text,
        created_at: record.completed_at ?? new Date().toISOString(),
      });
    }
    await deliver(record, span);
    // The one line per finished request (as the batcher writes for model answers).
    logger.info(
      {
        request_id: request.id,
        tenant: request.tenant,
        conversation_id: request.conversation_id,
        model: request.model,
        status: record.status,
        source: record.result?.source,
        prompt_tokens: record.result?.usage.prompt_tokens ?? request.prompt_tokens,
        completion_tokens: record.result?.usage.completion_tokens,
        response_time_ms: Date.now() - Date.parse(request.created_at),
        cache_key: key,
      },
      "request finished",
    );
    return true;
  }

  async function handleRecord(record: SQSRecord): Promise<CacheOutcome> {
    let event: RequestAcceptedEvent;
    try {
      event = parseRecord(record, requestAcceptedEventSchema);
    } catch (error) {
      if (!(error instanceof PoisonMessageError)) throw error;
      logger.warn({ message_id: record.messageId, reason: error.message }, "poison message to the DLQ");
      await sendToDlq(
        { sqs: deps.sqs, queueUrl: await deps.queueUrls.get(dlqName(queueName(deps.prefix, "requests"))) },
        record,
        error.message,
      );
      return CACHE_OUTCOMES.poison;
    }
    const span = startConsumerSpan("cache", requestsQueue, record.messageId, event.traceparent, event.data);
    return traced(span, () => handleEvent(record, event, span));
  }

  async function handleEvent(
    record: SQSRecord,
    event: RequestAcceptedEvent,
    span: Span | undefined,
  ): Promise<CacheOutcome> {
    const request = event.data;
    const log = logger.child({ request_id: request.id, tenant: request.tenant });
    // A first delivery needs no read: the message carries the request, and every terminal write is
    // conditional. A redelivery (a repeat, a turn or a follower checking back) reads the record to
    // see whether it is finished already.
    if (attemptNumber(record) > 1) {
      const stored = await requests.get(request.id);
      if (!stored) {
        log.warn("no request record (expired, or rolled back by ingest); dropping the message");
        return CACHE_OUTCOMES.dropped;
      }
      if (stored.status === "completed" || stored.status === "failed") {
        // A repeat after a crash between the terminal write and the delivery send: send it again (same event id).
        await deliver(stored, span);
        return CACHE_OUTCOMES.replayed;
      }
    }

    const context = await assembleContext(
      {
        requests,
        conversations: deps.conversations,
        summarize: deps.summarize,
        historyTokenBudget: config.historyTokenBudget,
        maxModelLen: config.maxModelLen,
        ...(config.maxConversationTurns ? { maxTurns: config.maxConversationTurns } : {}),
        logger: log,
      },
      request,
    );
    if (!context.ready) {
      metrics.waits.inc();
      log.debug({ waiting_for: context.waitingFor }, "an earlier turn is not done; checking again later");
      return defer(record, config.conversationRecheckSeconds, `waiting for ${context.waitingFor}`);
    }
    if (context.ready === "refused") {
      const { record: failed } = await requests.fail(request.id, {
        code: FAILURE_CODES.invalidRequest,
        message: context.reason,
      });
      await deliver(failed, span);
      log.info({ reason: context.reason }, "conversation turn refused");
      return CACHE_OUTCOMES.refused;
    }
    // History and summary tokens are the tenant's to pay (ingest counted only the turn's own prompt):
    // charged after the fact, they count against the quota of the requests that follow.
    if (context.historyTokens > 0 && deps.usage) {
      await deps.usage.charge(request.tenant, context.historyTokens);
    }
    if (context.summarized) metrics.summaries.inc({ kind: "summary" });
    else if (context.truncated) metrics.summaries.inc({ kind: "truncated" });

    const tenant = await tenantOf(request.tenant);
    let key: string | undefined;
    if (cacheAllowed(request, tenant)) {
      key = cacheKey({
        tenant: request.tenant,
        model: request.model,
        prompt: request.prompt,
        messages: context.context ?? request.messages,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
      });
      if (await answerFromCache(request, key, span)) {
        metrics.cache.inc({ result: "hit" });
        return CACHE_OUTCOMES.hit;
      }
      const claim = await cache.claim(key, request.id, config.coalesceTimeoutSeconds);
      if (!claim.leader) {
        // Another identical request is with the model: check back for its answer. If its leader
        // dies, the marker goes stale after coalesceTimeoutSeconds and this request claims it.
        if (receiveCount(record) === 1) metrics.cache.inc({ result: "coalesced" });
        log.debug({ leader: claim.holder }, "coalesced with an identical request in flight");
        return defer(record, config.coalesceRecheckSeconds, `coalesced with ${claim.holder}`);
      }
      metrics.cache.inc({ result: "miss" });
    }

    const data: InferenceRequest = {
      ...request,
      ...(key ? { cache_key: key } : {}),
      ...(context.context ? { context: context.context } : {}),
    };
    const inference = buildEvent({
      id: newEventId(),
      type: EVENT_TYPES.inferenceRequested,
      subject: request.id,
      data,
      traceparent: traceparentOf(span, event.traceparent),
    });
    await senders.inference.send(inference);
    log.debug({ cache_key: key, context_messages: context.context?.length }, "forwarded to inference");
    return CACHE_OUTCOMES.forwarded;
  }

  return { handleRecord };
}
