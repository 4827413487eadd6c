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
import { DEFAULT_PREFIX, dlqName, queueName } from "../shared/names.ts";
import { withoutUndefined } from "../shared/options.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { handOn, ResultPublisher } from "../shared/results.ts";
import {
  attemptNumber,
  BatchSender,
  deferRecord,
  inferenceAttributes,
  PoisonMessageError,
  parseRecord,
  RetryLaterError,
  receiveCount,
  sendToDlq,
} from "../shared/sqs-records.ts";
import { cacheAllowed, cacheKey, type ResponseCache } from "../shared/stores/cache.ts";
import type { ConversationStore } from "../shared/stores/conversations.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import { TenantLookup } from "../shared/stores/tenant-lookup.ts";
import type { Tenant, TenantStore } from "../shared/stores/tenants.ts";
import type { UsageStore } from "../shared/stores/usage.ts";
import { type Span, spanTraceparent, startConsumerSpan, traced, traceparentOf } from "../shared/tracing.ts";
import { CACHE_DEFAULTS } from "./config.ts";
import { assembleContext, type ContextOutcome, turnMessages } from "./context.ts";

/** The cache function's tunables; each defaults from CACHE_DEFAULTS. */
export interface CacheOptions {
  /** A coalesced follower falls back to its own model call after this long. */
  coalesceTimeoutSeconds?: number;
  /** How soon a follower checks again for its leader's answer. */
  coalesceRecheckSeconds?: number;
  /** How soon a conversation turn checks again whether the turns before it are done. */
  conversationRecheckSeconds?: number;
  /** History tokens a turn may carry before older turns are summarised. */
  historyTokenBudget?: number;
  /** The model's context window (DEEPQUEUE_MAX_MODEL_LEN). */
  maxModelLen?: number;
  /** Most turns per conversation (DEEPQUEUE_CONVERSATION_MAX_TURNS). */
  maxConversationTurns?: number;
}

export interface CacheDeps {
  sqs: SQSClient;
  queueUrls: QueueUrls;
  /** Resource-name prefix (DEEPQUEUE_PREFIX). @default DEFAULT_PREFIX */
  prefix?: string;
  requests: RequestStore;
  tenants: Pick<TenantStore, "get">;
  conversations: ConversationStore;
  /** Charges a conversation turn's history tokens to the tenant's daily token quota; absent = not charged. */
  usage?: Pick<UsageStore, "charge"> | undefined;
  /** The response cache: stored answers and in-flight markers. */
  responses: ResponseCache;
  /** Writes a conversation summary (a model call); absent = history is truncated instead. */
  summarize?: ((transcript: ChatMessage[]) => Promise<string>) | undefined;
  config?: CacheOptions;
  logger: Logger;
}

/** What happened to one requests-queue message. */
const CACHE_OUTCOMES = {
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

/** The cache function: one call per requests-queue message. */
export interface CacheFunction {
  handleRecord(record: SQSRecord): Promise<CacheOutcome>;
}

/** One message being handled. */
interface Turn {
  record: SQSRecord;
  event: RequestAcceptedEvent;
  request: AcceptedRequest;
  span: Span | undefined;
  log: Logger;
}

/**
 * The cache function: requests queue → (conversation context) → response
 * cache → hit: completed with `source: "cache"` to the delivery queue; miss:
 * identical in-flight requests coalesced, the leader forwarded to the
 * inference queue.
 *
 * @example const fn = new CacheStage(deps); const outcome = await fn.handleRecord(record);
 */
export class CacheStage implements CacheFunction {
  readonly #deps: CacheDeps & { prefix: string };
  readonly #config: Required<CacheOptions>;
  /** Tenant settings (cache opt-in), kept briefly: one read per tenant per TTL, not per message. */
  readonly #tenantLookup: TenantLookup;
  readonly #senders: { inference: BatchSender; delivery: BatchSender };
  readonly #results: ResultPublisher;
  readonly #requestsQueue: string;

  constructor(deps: CacheDeps) {
    const prefix = deps.prefix ?? DEFAULT_PREFIX;
    this.#deps = { ...deps, prefix };
    this.#config = { ...CACHE_DEFAULTS, ...withoutUndefined(deps.config ?? {}) };
    this.#tenantLookup = new TenantLookup(deps.tenants);
    // The records of one SQS batch are handled concurrently: their sends go out as SendMessageBatch calls.
    const sender = (queue: "inference" | "delivery") =>
      new BatchSender(deps.sqs, () => deps.queueUrls.get(queueName(prefix, queue)));
    this.#senders = { inference: sender("inference"), delivery: sender("delivery") };
    this.#results = new ResultPublisher(deps.sqs, deps.queueUrls, prefix);
    this.#requestsQueue = queueName(prefix, "requests");
  }

  async handleRecord(record: SQSRecord): Promise<CacheOutcome> {
    let event: RequestAcceptedEvent;
    try {
      event = parseRecord(record, requestAcceptedEventSchema);
    } catch (error) {
      if (!(error instanceof PoisonMessageError)) throw error;
      this.#deps.logger.warn(
        { message_id: record.messageId, reason: error.message },
        "poison message to the DLQ",
      );
      await sendToDlq(await this.#target(dlqName(this.#requestsQueue)), record, error.message);
      return CACHE_OUTCOMES.poison;
    }
    const request = event.data;
    const span = startConsumerSpan(
      "cache",
      this.#requestsQueue,
      record.messageId,
      event.traceparent,
      request,
    );
    const log = this.#deps.logger.child({ request_id: request.id, tenant: request.tenant });
    return traced(span, () => this.#handle({ record, event, request, span, log }));
  }

  async #handle(turn: Turn): Promise<CacheOutcome> {
    const replayed = await this.#replayIfFinished(turn);
    if (replayed) return replayed;
    const context = await this.#context(turn);
    if (typeof context === "string") return context;
    let key: string | undefined;
    if (cacheAllowed(turn.request, await this.#tenant(turn.request.tenant))) {
      key = cacheKey({
        tenant: turn.request.tenant,
        model: turn.request.model,
        prompt: turn.request.prompt,
        messages: context ?? turn.request.messages,
        max_tokens: turn.request.max_tokens,
        temperature: turn.request.temperature,
      });
      const answered = await this.#answerOrCoalesce(turn, key);
      if (answered) return answered;
    }
    return this.#forward(turn, key, context);
  }

  /**
   * A first delivery needs no read: the message carries the request, and every terminal write is
   * conditional. A redelivery (a repeat, a turn or a follower checking back) reads the record to
   * see whether it is finished already.
   */
  async #replayIfFinished({ record, request, span, log }: Turn): Promise<CacheOutcome | undefined> {
    if (attemptNumber(record) <= 1) return undefined;
    const stored = await this.#deps.requests.get(request.id);
    if (!stored) {
      log.warn("no request record (expired, or rolled back by ingest); dropping the message");
      return CACHE_OUTCOMES.dropped;
    }
    if (stored.status !== "completed" && stored.status !== "failed") return undefined;
    // A repeat after a crash between the terminal write and the delivery send: send it again (same event id).
    await this.#handOn(stored, span);
    return CACHE_OUTCOMES.replayed;
  }

  /** The conversation context the turn carries (undefined: none), or what became of a turn that cannot go on. */
  async #context(turn: Turn): Promise<ChatMessage[] | undefined | CacheOutcome> {
    const { request, log } = turn;
    const context: ContextOutcome = await assembleContext(
      {
        requests: this.#deps.requests,
        conversations: this.#deps.conversations,
        summarize: this.#deps.summarize,
        historyTokenBudget: this.#config.historyTokenBudget,
        maxModelLen: this.#config.maxModelLen,
        maxTurns: this.#config.maxConversationTurns,
        logger: log,
      },
      request,
    );
    if (!context.ready) {
      metrics.waits.inc();
      log.debug({ waiting_for: context.waitingFor }, "an earlier turn is not done; checking again later");
      return this.#defer(
        turn.record,
        this.#config.conversationRecheckSeconds,
        `waiting for ${context.waitingFor}`,
      );
    }
    if (context.ready === "refused") {
      const failure = { code: FAILURE_CODES.invalidRequest, message: context.reason };
      const { record: failed } = await this.#deps.requests.fail(request.id, failure);
      await this.#handOn(failed, turn.span);
      log.info({ reason: context.reason }, "conversation turn refused");
      return CACHE_OUTCOMES.refused;
    }
    // History and summary tokens are the tenant's to pay (ingest counted only the turn's own prompt):
    // charged after the fact, they count against the quota of the requests that follow.
    if (context.historyTokens > 0) await this.#deps.usage?.charge(request.tenant, context.historyTokens);
    if (context.summarized) metrics.summaries.inc({ kind: "summary" });
    else if (context.truncated) metrics.summaries.inc({ kind: "truncated" });
    return context.context;
  }

  /** A hit answers the request; a miss claims the key (leader: undefined, go on) or waits for the leader. */
  async #answerOrCoalesce(turn: Turn, key: string): Promise<CacheOutcome | undefined> {
    if (await this.#answerFromCache(turn, key)) {
      metrics.cache.inc({ result: "hit" });
      return CACHE_OUTCOMES.hit;
    }
    const claim = await this.#deps.responses.claim(key, turn.request.id, this.#config.coalesceTimeoutSeconds);
    if (claim.leader) {
      metrics.cache.inc({ result: "miss" });
      return undefined;
    }
    // Another identical request is with the model: check back for its answer. If its leader
    // dies, the marker goes stale after coalesceTimeoutSeconds and this request claims it.
    if (receiveCount(turn.record) === 1) metrics.cache.inc({ result: "coalesced" });
    turn.log.debug({ leader: claim.holder }, "coalesced with an identical request in flight");
    return this.#defer(turn.record, this.#config.coalesceRecheckSeconds, `coalesced with ${claim.holder}`);
  }

  async #answerFromCache({ request, span }: Turn, key: string): Promise<boolean> {
    const hit = await this.#deps.responses.get(key);
    if (!hit) return false;
    const { record } = await this.#deps.requests.complete(request.id, {
      text: hit.text,
      finish_reason: hit.finish_reason,
      usage: hit.usage,
      source: "cache",
    });
    if (record.status === "completed" && record.result && request.conversation_id) {
      await this.#deps.conversations.appendTurn(request.tenant, request.conversation_id, {
        request_id: request.id,
        messages: turnMessages(request),
        answer: record.result.text,
        created_at: record.completed_at ?? new Date().toISOString(),
      });
    }
    await this.#handOn(record, span);
    // The one line per finished request (as the batcher writes for model answers).
    this.#deps.logger.info(
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

  /** To the inference queue, with the cache key (the batcher stores the answer) and the context. */
  async #forward(
    { event, request, span, log }: Turn,
    key: string | undefined,
    context: ChatMessage[] | undefined,
  ) {
    const data: InferenceRequest = { ...request, cache_key: key, context };
    const inference = buildEvent({
      id: newEventId(),
      type: EVENT_TYPES.inferenceRequested,
      subject: request.id,
      data,
      traceparent: traceparentOf(span, event.traceparent),
    });
    await this.#senders.inference.send(inference, inferenceAttributes(request));
    log.debug({ cache_key: key, context_messages: context?.length }, "forwarded to inference");
    return CACHE_OUTCOMES.forwarded;
  }

  /** A finished record to its consumers: the result queue, or the delivery queue for a callback. */
  async #handOn(stored: StoredRequest, span: Span | undefined): Promise<void> {
    await handOn(stored, { results: this.#results, delivery: this.#senders.delivery }, spanTraceparent(span));
  }

  async #defer(record: SQSRecord, seconds: number, reason: string): Promise<CacheOutcome> {
    const how = await deferRecord(await this.#target(this.#requestsQueue), record, seconds);
    // "requeued": a fresh copy is on the queue, this one may be deleted.
    if (how === "retry") throw new RetryLaterError(reason);
    return CACHE_OUTCOMES.waiting;
  }

  async #target(queue: string): Promise<{ sqs: SQSClient; queueUrl: string }> {
    return { sqs: this.#deps.sqs, queueUrl: await this.#deps.queueUrls.get(queue) };
  }

  #tenant(name: string): Promise<Tenant | undefined> {
    return this.#tenantLookup.get(name);
  }
}
