import type { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import {
  type AcceptedRequest,
  buildEvent,
  type ChatMessage,
  EVENT_TYPES,
  type InferenceRequest,
  requestAcceptedEventSchema,
} from "../../events/index.ts";
import { FAILURE_CODES } from "../shared/errors.ts";
import { childTraceparent, newEventId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import { counter } from "../shared/metrics.ts";
import { dlqName, queueName } from "../shared/names.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { deliveryEvent } from "../shared/results.ts";
import {
  BatchSender,
  deferRecord,
  PoisonMessageError,
  parseRecord,
  RetryLaterError,
  receiveCount,
  sendToDlq,
} from "../shared/sqs-records.ts";
import { type CacheStore, cacheKey } from "../shared/stores/cache.ts";
import type { ConversationStore } from "../shared/stores/conversations.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import type { Tenant, TenantStore } from "../shared/stores/tenants.ts";
import type { UsageStore } from "../shared/stores/usage.ts";
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

/** True when SPEC §2 lets this request use the cache. */
export function cacheAllowed(
  request: AcceptedRequest,
  tenant: Pick<Tenant, "cache_opt_in"> | undefined,
): boolean {
  return request.cache !== false && (request.temperature === 0 || tenant?.cache_opt_in === true);
}

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

  async function deliver(stored: StoredRequest): Promise<void> {
    await senders.delivery.send(deliveryEvent(stored));
  }

  async function defer(record: SQSRecord, seconds: number, reason: string): Promise<CacheOutcome> {
    const how = await deferRecord(await target("requests"), record, seconds);
    // "requeued": a fresh copy is on the queue, this one may be deleted.
    if (how === "retry") throw new RetryLaterError(reason);
    return CACHE_OUTCOMES.waiting;
  }

  async function answerFromCache(request: AcceptedRequest, key: string): Promise<boolean> {
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
    await deliver(record);
    logger.info(
      { request_id: request.id, tenant: request.tenant, cache_key: key },
      "answered from the cache",
    );
    return true;
  }

  async function handleRecord(record: SQSRecord): Promise<CacheOutcome> {
    let event: ReturnType<typeof requestAcceptedEventSchema.parse>;
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
    const request = event.data;
    const log = logger.child({ request_id: request.id, tenant: request.tenant });
    // queued → processing in one conditional write; only when it does not apply (a repeat, a
    // turn or follower checking back, a missing record) is the record read to see why.
    if (!(await requests.markProcessing(request.id))) {
      const stored = await requests.get(request.id);
      if (!stored) {
        log.warn("no request record (expired, or rolled back by ingest); dropping the message");
        return CACHE_OUTCOMES.dropped;
      }
      if (stored.status === "completed" || stored.status === "failed") {
        // A repeat after a crash between the terminal write and the delivery send: send it again (same event id).
        await deliver(stored);
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
      await deliver(failed);
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
      if (await answerFromCache(request, key)) {
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
      traceparent: childTraceparent(event.traceparent),
    });
    await senders.inference.send(inference);
    log.debug({ cache_key: key, context_messages: context.context?.length }, "forwarded to inference");
    return CACHE_OUTCOMES.forwarded;
  }

  return { handleRecord };
}
