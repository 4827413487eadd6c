import type { SQSClient } from "@aws-sdk/client-sqs";
import {
  type AcceptedRequest,
  type AcceptedResponse,
  buildEvent,
  EVENT_TYPES,
  LIMITS,
  type SubmitBody,
} from "../../events/index.ts";
import { Coalescer } from "../shared/coalescer.ts";
import {
  HttpError,
  IdempotencyInProgressError,
  IdempotencyKeyReusedError,
  InvalidRequestError,
  QuotaExceededError,
  RateLimitedError,
  UnavailableError,
} from "../shared/errors.ts";
import { newEventId, newRequestId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import { counter } from "../shared/metrics.ts";
import { queueName } from "../shared/names.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { BatchSender, inferenceAttributes } from "../shared/sqs-records.ts";
import { cacheAllowed } from "../shared/stores/cache.ts";
import {
  bodyFingerprint,
  IdempotencyConflictError,
  type IdempotencyStore,
} from "../shared/stores/idempotency.ts";
import { BATCH_WRITE_MAX_ITEMS, type RequestStore, type StoredRequest } from "../shared/stores/requests.ts";
import type { Tenant } from "../shared/stores/tenants.ts";
import type { QuotaLimits, ReserveOutcome, UsageStore } from "../shared/stores/usage.ts";
import { ATTR, type Span, traceparentOf } from "../shared/tracing.ts";

export const quotaRejections = counter(
  "deepqueue_quota_rejections_total",
  "Submissions refused with 429 by kind (requests, tokens: daily quotas; rate: per-replica rate limit; abuse: budget of refused requests spent)",
  ["kind"],
);

const THROTTLING = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
]);

/** A store or queue failure as the client sees it: throttling → 429 rate_limited, anything else → 503. */
function backendError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (THROTTLING.has((error as { name?: string })?.name ?? "")) {
    return new RateLimitedError("the service is throttled; retry shortly", 1);
  }
  return new UnavailableError(undefined, { cause: error });
}

export async function orUnavailable<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw backendError(error);
  }
}

/** One checked submission on its way in. */
export interface Submission {
  tenant: Tenant;
  body: SubmitBody;
  /** The raw body text (the Idempotency-Key's fingerprint). */
  raw: string;
  headers: Record<string, string | undefined>;
  /** The prompt's tokens, counted at admission. */
  tokens: number;
  span: Span | undefined;
  /** Where a waiting caller gets the answer (the OpenAI-compatible routes), never from the wire. */
  reply?: AcceptedRequest["reply"];
}

/** The accepted (202) or replayed (200) answer to a submission. */
export interface Accepted {
  status: 200 | 202;
  response: AcceptedResponse;
}

export interface AcceptorOptions {
  sqs: SQSClient;
  queueUrls: QueueUrls;
  requests: RequestStore;
  usage: UsageStore;
  idempotency: IdempotencyStore<AcceptedResponse>;
  logger: Logger;
  prefix: string;
  /** `model` when the body names none (DEEPQUEUE_MODEL). */
  defaultModel: string;
}

/**
 * The write path of a checked submission: Idempotency-Key → quota → record →
 * requests-queue message. A refused request leaves nothing behind: every step
 * taken is given back when a later one fails.
 *
 * Concurrent submissions share their writes (group commit, shared/coalescer.ts): under load a
 * quota update, a records BatchWriteItem and a SendMessageBatch each serve many requests, and
 * every 202 still waits for its own record and message to be durable.
 *
 * @example const { status, response } = await acceptor.accept(submission);
 */
export class Acceptor {
  readonly #options: AcceptorOptions;
  readonly #quota: Coalescer<{ tenant: string; tokens: number; limits: QuotaLimits }, ReserveOutcome>;
  readonly #records: Coalescer<Parameters<RequestStore["createMany"]>[0][number], StoredRequest>;
  readonly #senders: { requests: BatchSender; inference: BatchSender };

  constructor(options: AcceptorOptions) {
    this.#options = options;
    const { usage, requests, sqs, queueUrls, prefix } = options;
    this.#quota = new Coalescer(
      {
        maxBatch: BATCH_WRITE_MAX_ITEMS,
        maxConcurrent: 2,
        key: (ask: { tenant: string; limits: QuotaLimits }) =>
          `${ask.tenant}\u0000${ask.limits.daily_requests}\u0000${ask.limits.daily_tokens}`,
      },
      (asks) =>
        usage.reserveMany(
          asks[0]!.tenant,
          asks.map((a) => a.tokens),
          asks[0]!.limits,
        ),
    );
    this.#records = new Coalescer({ maxBatch: BATCH_WRITE_MAX_ITEMS, maxConcurrent: 2 }, (entries) =>
      requests.createMany(entries),
    );
    const sender = (queue: "requests" | "inference") =>
      new BatchSender(sqs, () => queueUrls.get(queueName(prefix, queue)));
    this.#senders = { requests: sender("requests"), inference: sender("inference") };
  }

  /** Accepts `submission` once per Idempotency-Key: 202 when new, 200 with the first answer on a replay. */
  async accept(submission: Submission): Promise<Accepted> {
    const tenant = submission.tenant.tenant;
    const id = newRequestId();
    submission.span?.setAttribute(ATTR.requestId, id);
    const response: AcceptedResponse = { id, status: "queued", status_url: `/v1/requests/${id}` };
    const key = submission.headers["idempotency-key"];
    if (key !== undefined) {
      const replay = await this.#begin(tenant, key, submission.raw, id);
      if (replay) return { status: 200, response: replay };
    }
    try {
      await this.#admit(submission, id);
    } catch (error) {
      if (key !== undefined) {
        await this.#options.idempotency
          .abandon(tenant, key, id)
          .catch((e) =>
            this.#options.logger.warn({ err: e, request_id: id }, "could not free the idempotency key"),
          );
      }
      throw error;
    }
    if (key !== undefined) {
      // The request is accepted and sent: a failure here only means a retry
      // after the in-progress window could be accepted again, so log it.
      await this.#options.idempotency
        .complete(tenant, key, id, response)
        .catch((e) =>
          this.#options.logger.error({ err: e, request_id: id }, "could not store the idempotent response"),
        );
    }
    return { status: 202, response };
  }

  /** Claims the Idempotency-Key for `id`; the first answer when the key was completed before. */
  async #begin(tenant: string, key: string, raw: string, id: string): Promise<AcceptedResponse | undefined> {
    if (key.length === 0 || key.length > LIMITS.idempotencyKeyLength) {
      throw new InvalidRequestError(`Idempotency-Key: must be 1-${LIMITS.idempotencyKeyLength} characters`);
    }
    try {
      const begun = await this.#options.idempotency.begin(tenant, key, bodyFingerprint(raw), id);
      return begun.state === "completed" ? begun.response : undefined;
    } catch (error) {
      if (error instanceof IdempotencyConflictError) {
        throw error.reason === "reused" ? new IdempotencyKeyReusedError() : new IdempotencyInProgressError();
      }
      throw backendError(error);
    }
  }

  /** Quota, then record and message; the quota is given back when either fails. */
  async #admit(submission: Submission, id: string): Promise<void> {
    const { tenant, body, tokens } = submission;
    // Token quota: the prompt's tokens plus max_tokens, the most this request can use,
    // counted at admission (the completion's real length is not known yet).
    const quotaTokens = tokens + body.max_tokens;
    const day = await this.#reserve(tenant, quotaTokens);
    try {
      const accepted = this.#acceptedRequest(submission, id);
      // The record and the event carry ingest's span (with tracing off: a child of the caller's traceparent).
      const traceparent = traceparentOf(submission.span, submission.headers.traceparent);
      await orUnavailable(
        this.#records.submit({
          request: accepted,
          options: {
            traceparent,
            delivery: body.callback_url ? { status: "pending", attempts: 0 } : undefined,
          },
        }),
      );
      await this.#send(accepted, tenant, traceparent);
    } catch (error) {
      await this.#options.usage
        .release(tenant.tenant, quotaTokens, day)
        .catch((e) => this.#options.logger.warn({ err: e, request_id: id }, "could not give back the quota"));
      throw error;
    }
  }

  /** Reserves one request and `tokens` of the tenant's daily quotas: the day it counted on, or 429. */
  async #reserve(tenant: Tenant, tokens: number): Promise<string> {
    const limits = { daily_requests: tenant.daily_requests, daily_tokens: tenant.daily_tokens };
    const reserved = await orUnavailable(this.#quota.submit({ tenant: tenant.tenant, tokens, limits }));
    if (reserved.admitted) return reserved.day;
    quotaRejections.inc({ kind: reserved.kind });
    throw new QuotaExceededError(
      reserved.kind === "requests"
        ? `daily request quota of ${tenant.daily_requests} reached; it resets at 00:00 UTC`
        : `daily token quota of ${tenant.daily_tokens} would be exceeded (this request counts ${tokens}: prompt + max_tokens); it resets at 00:00 UTC`,
      reserved.retryAfterSeconds,
    );
  }

  #acceptedRequest({ tenant, body, tokens, reply }: Submission, id: string): AcceptedRequest {
    const now = new Date();
    return {
      id,
      tenant: tenant.tenant,
      model: body.model ?? this.#options.defaultModel,
      prompt: body.prompt,
      messages: body.messages,
      max_tokens: body.max_tokens,
      temperature: body.temperature,
      cache: body.cache,
      conversation_id: body.conversation_id || undefined,
      callback_url: body.callback_url || undefined,
      metadata: body.metadata || undefined,
      reply,
      prompt_tokens: tokens,
      created_at: now.toISOString(),
      deadline_at: new Date(now.getTime() + body.deadline_seconds * 1000).toISOString(),
    };
  }

  /** The requests-queue message; when it cannot be sent, the record is taken back. */
  async #send(accepted: AcceptedRequest, tenant: Tenant, traceparent: string): Promise<void> {
    try {
      // A request that may not use the cache and continues no conversation has nothing to do
      // in the cache stage: it goes straight to the batcher, one queue hop fewer.
      const direct = !accepted.conversation_id && !cacheAllowed(accepted, tenant);
      const event = buildEvent({
        id: newEventId(),
        type: direct ? EVENT_TYPES.inferenceRequested : EVENT_TYPES.requestAccepted,
        subject: accepted.id,
        data: accepted,
        time: accepted.created_at,
        traceparent,
      });
      await (direct ? this.#senders.inference : this.#senders.requests).send(event, {
        tenant: tenant.tenant,
        ...inferenceAttributes(accepted),
      });
    } catch (error) {
      // Not sent: take the record back so nothing stays `queued` without a message.
      // If even that fails, the reconciler finds it at its deadline and fails it.
      const { requests, logger } = this.#options;
      const removed = await requests.deleteQueued(accepted.id).catch((e) => {
        logger.error({ err: e, request_id: accepted.id }, "could not remove the unsent request record");
        return false;
      });
      logger.error(
        { err: error, request_id: accepted.id, tenant: tenant.tenant, removed },
        "requests queue send failed",
      );
      throw backendError(error);
    }
  }
}
