import { GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import {
  type AcceptedRequest,
  type AcceptedResponse,
  buildEvent,
  describeIssues,
  EVENT_TYPES,
  LIMITS,
  type SubmitBody,
  submitBodySchema,
} from "../../events/index.ts";
import { checkCallbackUrl } from "../shared/callback-url.ts";
import { Coalescer } from "../shared/coalescer.ts";
import {
  HttpError,
  IdempotencyInProgressError,
  IdempotencyKeyReusedError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  QuotaExceededError,
  RateLimitedError,
  UnavailableError,
} from "../shared/errors.ts";
import { newEventId, newRequestId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import { counter, histogram, metricsText } from "../shared/metrics.ts";
import { queueName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import { BatchSender } from "../shared/sqs-records.ts";
import { cacheAllowed } from "../shared/stores/cache.ts";
import type { ConversationStore } from "../shared/stores/conversations.ts";
import {
  bodyFingerprint,
  IdempotencyConflictError,
  type IdempotencyStore,
} from "../shared/stores/idempotency.ts";
import {
  BATCH_WRITE_MAX_ITEMS,
  type RequestStore,
  type StoredRequest,
  toPublicRecord,
} from "../shared/stores/requests.ts";
import type { QuotaLimits, ReserveOutcome, UsageStore } from "../shared/stores/usage.ts";
import { countPromptTokens } from "../shared/tokenizer.ts";
import {
  ATTR,
  endSpan,
  type Span,
  SpanKind,
  SpanStatusCode,
  startSpan,
  traceparentOf,
  tracingEnabled,
} from "../shared/tracing.ts";
import type { Admission } from "./admission.ts";
import type { Authenticator, Principal } from "./auth.ts";

/** An HTTP request as the logic sees it: lower-case headers, the raw body text, route parameters. */
export interface ApiRequest {
  headers: Record<string, string | undefined>;
  body: string;
  params: Record<string, string | undefined>;
  /** Set by the OpenAI-compatible routes (functions/openai), never from the wire: where the answer goes. */
  reply?: AcceptedRequest["reply"];
}

/** An HTTP response before serialization: `body` is JSON unless it is a string. */
export interface ApiResponse {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

export interface IngestSettings {
  /** `model` when the body names none (DEEPQUEUE_MODEL). */
  defaultModel: string;
  /** The model's context window (DEEPQUEUE_MAX_MODEL_LEN). */
  maxModelLen: number;
  /** Allows loopback callback URLs (DEEPQUEUE_DEV_MODE). */
  devMode: boolean;
  prefix: string;
}

export interface IngestDeps {
  settings: IngestSettings;
  sqs: SQSClient;
  requests: RequestStore;
  usage: UsageStore;
  idempotency: IdempotencyStore<AcceptedResponse>;
  conversations: ConversationStore;
  auth: Authenticator;
  /** Rate limit, abuse budget, token floor and off-loop count, in-flight limit (admission.ts). */
  admission: Admission;
  logger: Logger;
  /** Callback URL check (DNS injectable in tests). @default checkCallbackUrl */
  checkCallback?: typeof checkCallbackUrl;
  queueUrls?: QueueUrls;
}

export const ingestMetrics = {
  requests: counter(
    "deepqueue_ingest_requests_total",
    "Submissions to POST /v1/requests by outcome (accepted, replayed, or the error code)",
    ["outcome"],
  ),
  acceptLatency: histogram(
    "deepqueue_ingest_accept_latency_seconds",
    "Time from a submission's arrival to its 202 (record written and message sent)",
  ),
  quotaRejections: counter(
    "deepqueue_quota_rejections_total",
    "Submissions refused with 429 by kind (requests, tokens: daily quotas; rate: per-replica rate limit; abuse: budget of refused requests spent)",
    ["kind"],
  ),
} as const;

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

async function orUnavailable<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw backendError(error);
  }
}

/** Parses and checks a submission body: 400 invalid_request naming the field. */
export function parseSubmitBody(raw: string): SubmitBody {
  if (raw.trim() === "") throw new InvalidRequestError("the body must be a JSON object");
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    throw new InvalidRequestError(`malformed JSON: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new InvalidRequestError("the body must be a JSON object");
  }
  const parsed = submitBodySchema.safeParse(json);
  if (!parsed.success) throw new InvalidRequestError(describeIssues(parsed.error));
  return parsed.data;
}

/**
 * Prompt tokens as vLLM counts them: a chat is rendered with DeepSeek's chat
 * template, a plain prompt gets the BOS token.
 */
export function promptTokens(body: Pick<SubmitBody, "prompt" | "messages">): number {
  return countPromptTokens(body);
}

/**
 * The ingest logic (docs/api.md#http-api): auth → validation → idempotency → quota →
 * record → requests-queue message. A refused request leaves nothing behind:
 * every step taken is given back when a later one fails.
 *
 * @example
 * const ingest = createIngest(deps);
 * const res = await ingest.submit({ headers, body, params: {} }); // { status: 202, body: { id, ... } }
 */
export function createIngest(deps: IngestDeps) {
  const { settings, logger } = deps;
  const queueUrls = deps.queueUrls ?? new QueueUrls(deps.sqs);
  const requestsQueue = queueName(settings.prefix, "requests");
  const inferenceQueue = queueName(settings.prefix, "inference");
  const checkCallback = deps.checkCallback ?? checkCallbackUrl;
  // Concurrent submissions share their writes (group commit, shared/coalescer.ts): under load a
  // quota update, a records BatchWriteItem and a SendMessageBatch each serve many requests, and
  // every 202 still waits for its own record and message to be durable.
  const quota = new Coalescer<{ tenant: string; tokens: number; limits: QuotaLimits }, ReserveOutcome>(
    {
      maxBatch: BATCH_WRITE_MAX_ITEMS,
      maxConcurrent: 2,
      key: (ask: { tenant: string; limits: QuotaLimits }) =>
        `${ask.tenant}\u0000${ask.limits.daily_requests}\u0000${ask.limits.daily_tokens}`,
    },
    (asks) =>
      deps.usage.reserveMany(
        asks[0]!.tenant,
        asks.map((a) => a.tokens),
        asks[0]!.limits,
      ),
  );
  const records = new Coalescer<Parameters<RequestStore["createMany"]>[0][number], StoredRequest>(
    { maxBatch: BATCH_WRITE_MAX_ITEMS, maxConcurrent: 2 },
    (entries) => deps.requests.createMany(entries),
  );
  const senders = {
    requests: new BatchSender(deps.sqs, () => queueUrls.get(requestsQueue)),
    inference: new BatchSender(deps.sqs, () => queueUrls.get(inferenceQueue)),
  };

  async function authenticateRead(req: ApiRequest): Promise<Principal> {
    return deps.auth.authenticate(req.headers, "", { signed: false });
  }

  async function accept(
    principal: Principal,
    req: ApiRequest,
    body: SubmitBody,
    tokens: number,
    span: Span | undefined,
  ): Promise<ApiResponse> {
    const tenant = principal.tenant;
    const id = newRequestId();
    span?.setAttribute(ATTR.requestId, id);
    const response: AcceptedResponse = { id, status: "queued", status_url: `/v1/requests/${id}` };
    const key = req.headers["idempotency-key"];
    if (key !== undefined) {
      if (key.length === 0 || key.length > LIMITS.idempotencyKeyLength) {
        throw new InvalidRequestError(`Idempotency-Key: must be 1-${LIMITS.idempotencyKeyLength} characters`);
      }
      try {
        const begun = await deps.idempotency.begin(tenant.tenant, key, bodyFingerprint(req.body), id);
        if (begun.state === "completed") {
          return { status: 200, headers: { location: begun.response.status_url }, body: begun.response };
        }
      } catch (error) {
        if (error instanceof IdempotencyConflictError) {
          throw error.reason === "reused"
            ? new IdempotencyKeyReusedError()
            : new IdempotencyInProgressError();
        }
        throw backendError(error);
      }
    }
    try {
      await admit(principal, req, body, tokens, id, span);
    } catch (error) {
      if (key !== undefined) {
        await deps.idempotency
          .abandon(tenant.tenant, key, id)
          .catch((e) => logger.warn({ err: e, request_id: id }, "could not free the idempotency key"));
      }
      throw error;
    }
    if (key !== undefined) {
      // The request is accepted and sent: a failure here only means a retry
      // after the in-progress window could be accepted again, so log it.
      await deps.idempotency
        .complete(tenant.tenant, key, id, response)
        .catch((e) => logger.error({ err: e, request_id: id }, "could not store the idempotent response"));
    }
    // RFC 9110 §15.3.3: a 202 should point at where the request's status can be watched.
    return { status: 202, headers: { location: response.status_url }, body: response };
  }

  async function admit(
    principal: Principal,
    req: ApiRequest,
    body: SubmitBody,
    tokens: number,
    id: string,
    span: Span | undefined,
  ): Promise<void> {
    const tenant = principal.tenant;
    // Token quota: the prompt's tokens plus max_tokens, the most this request can use,
    // counted at admission (the completion's real length is not known yet).
    const quotaTokens = tokens + body.max_tokens;
    const reserved = await orUnavailable(
      quota.submit({
        tenant: tenant.tenant,
        tokens: quotaTokens,
        limits: { daily_requests: tenant.daily_requests, daily_tokens: tenant.daily_tokens },
      }),
    );
    if (!reserved.admitted) {
      ingestMetrics.quotaRejections.inc({ kind: reserved.kind });
      const limit = reserved.kind === "requests" ? tenant.daily_requests : tenant.daily_tokens;
      throw new QuotaExceededError(
        reserved.kind === "requests"
          ? `daily request quota of ${limit} reached; it resets at 00:00 UTC`
          : `daily token quota of ${limit} would be exceeded (this request counts ${quotaTokens}: prompt + max_tokens); it resets at 00:00 UTC`,
        reserved.retryAfterSeconds,
      );
    }
    try {
      const now = new Date();
      const accepted: AcceptedRequest = {
        id,
        tenant: tenant.tenant,
        model: body.model ?? settings.defaultModel,
        ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
        ...(body.messages !== undefined ? { messages: body.messages } : {}),
        max_tokens: body.max_tokens,
        temperature: body.temperature,
        cache: body.cache,
        ...(body.conversation_id ? { conversation_id: body.conversation_id } : {}),
        ...(body.callback_url ? { callback_url: body.callback_url } : {}),
        ...(body.metadata ? { metadata: body.metadata } : {}),
        ...(req.reply ? { reply: req.reply } : {}),
        prompt_tokens: tokens,
        created_at: now.toISOString(),
        deadline_at: new Date(now.getTime() + body.deadline_seconds * 1000).toISOString(),
      };
      // The record and the event carry ingest's span (with tracing off: a child of the caller's traceparent).
      const traceparent = traceparentOf(span, req.headers.traceparent);
      await orUnavailable(
        records.submit({
          request: accepted,
          options: {
            traceparent,
            ...(body.callback_url ? { delivery: { status: "pending", attempts: 0 } } : {}),
          },
        }),
      );
      try {
        // A request that may not use the cache and continues no conversation has nothing to do
        // in the cache stage: it goes straight to the batcher, one queue hop fewer.
        const direct = !accepted.conversation_id && !cacheAllowed(accepted, tenant);
        const event = buildEvent({
          id: newEventId(),
          type: direct ? EVENT_TYPES.inferenceRequested : EVENT_TYPES.requestAccepted,
          subject: id,
          data: accepted,
          time: accepted.created_at,
          traceparent,
        });
        await (direct ? senders.inference : senders.requests).send(event, { tenant: tenant.tenant });
      } catch (error) {
        // Not sent: take the record back so nothing stays `queued` without a message.
        // If even that fails, the reconciler finds it at its deadline and fails it.
        const removed = await deps.requests.deleteQueued(id).catch((e) => {
          logger.error({ err: e, request_id: id }, "could not remove the unsent request record");
          return false;
        });
        logger.error(
          { err: error, request_id: id, tenant: tenant.tenant, removed },
          "requests queue send failed",
        );
        throw backendError(error);
      }
    } catch (error) {
      await deps.usage
        .release(tenant.tenant, quotaTokens, reserved.day)
        .catch((e) => logger.warn({ err: e, request_id: id }, "could not give back the quota"));
      throw error;
    }
  }

  return {
    /** `POST /v1/requests`. */
    async submit(req: ApiRequest): Promise<ApiResponse> {
      const started = performance.now();
      let principal: Principal | undefined;
      let leave: (() => void) | undefined;
      let outcome = "internal_error";
      let status = 500;
      // An incoming W3C traceparent header is honoured: this span continues the caller's trace.
      const span = tracingEnabled()
        ? startSpan("POST /v1/requests", {
            parent: req.headers.traceparent,
            kind: SpanKind.SERVER,
            attributes: {
              [ATTR.function]: "ingest",
              "http.request.method": "POST",
              "http.route": "/v1/requests",
            },
          })
        : undefined;
      try {
        leave = deps.admission.enter();
        // serveHttp refuses large bodies while reading; on Lambda, API Gateway lets up to 10 MB through.
        if (Buffer.byteLength(req.body) > LIMITS.bodyBytes) throw new PayloadTooLargeError(LIMITS.bodyBytes);
        principal = await deps.auth.authenticate(req.headers, req.body, { signed: true });
        span?.setAttribute(ATTR.tenant, principal.tenant.tenant);
        deps.admission.gate(principal.tenant.tenant);
        const body = parseSubmitBody(req.body);
        const tokens = await deps.admission.promptTokens(body, principal.tenant.tenant);
        if (body.callback_url) await checkCallback(body.callback_url, { devMode: settings.devMode });
        const response = await accept(principal, req, body, tokens, span);
        outcome = response.status === 202 ? "accepted" : "replayed";
        status = response.status;
        const latency_ms = performance.now() - started;
        if (response.status === 202) ingestMetrics.acceptLatency.observe(latency_ms / 1000);
        // Debug only: at info, the one line per request is the batcher's (or the cache's) "request finished".
        logger.debug(
          {
            request_id: (response.body as AcceptedResponse).id,
            tenant: principal.tenant.tenant,
            prompt_tokens: tokens,
            max_tokens: body.max_tokens,
            latency_ms: Math.round(latency_ms * 100) / 100,
            outcome,
          },
          outcome === "accepted" ? "request accepted" : "idempotent replay",
        );
        return response;
      } catch (error) {
        outcome = error instanceof HttpError ? error.code : "internal_error";
        status = error instanceof HttpError ? error.status : 500;
        if (principal) deps.admission.charge(principal.tenant.tenant, error, req.body.length);
        if (error instanceof HttpError && error.status < 500) {
          logger.info(
            {
              tenant: principal?.tenant.tenant,
              outcome,
              latency_ms: Math.round((performance.now() - started) * 100) / 100,
            },
            "request refused",
          );
        }
        // A refused signed request may be retried with the same webhook-id.
        if (principal?.signatureId) {
          await deps.auth
            .releaseSignature(principal)
            .catch((e) => logger.warn({ err: e }, "could not release the webhook-id"));
        }
        throw error;
      } finally {
        leave?.();
        ingestMetrics.requests.inc({ outcome });
        if (span) {
          // A refusal (4xx) is the server working as it should: only a 5xx is an error span.
          if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
          endSpan(span, undefined, { [ATTR.outcome]: outcome, "http.response.status_code": status });
        }
      }
    },

    /** `GET /v1/requests/{id}`: own tenant only; another tenant's id is 404 like an unknown one. */
    async getRequest(req: ApiRequest): Promise<ApiResponse> {
      const principal = await authenticateRead(req);
      const id = req.params.id ?? "";
      const stored = id ? await orUnavailable(deps.requests.get(id, { progress: true })) : undefined;
      if (!stored || stored.tenant !== principal.tenant.tenant) throw new NotFoundError(`no request ${id}`);
      return { status: 200, body: toPublicRecord(stored) };
    },

    /** `GET /v1/conversations/{id}`: own tenant only. */
    async getConversation(req: ApiRequest): Promise<ApiResponse> {
      const principal = await authenticateRead(req);
      const id = req.params.id ?? "";
      const conversation = id
        ? await orUnavailable(deps.conversations.get(principal.tenant.tenant, id))
        : undefined;
      if (!conversation) throw new NotFoundError(`no conversation ${id}`);
      return { status: 200, body: conversation };
    },

    /** `GET /healthz`: 200 when the requests queue and the requests table answer, else 503. */
    async health(): Promise<ApiResponse> {
      const [queue, table] = await Promise.allSettled([
        queueUrls
          .get(requestsQueue)
          .then((QueueUrl) =>
            deps.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] })),
          ),
        deps.requests.get("healthz"),
      ]);
      const checks = { queue: queue.status === "fulfilled", table: table.status === "fulfilled" };
      if (!checks.queue) queueUrls.forget(requestsQueue);
      const ok = checks.queue && checks.table;
      return ok
        ? { status: 200, body: { status: "ok", checks } }
        : {
            status: 503,
            body: { error: { code: "unavailable", message: "the queue or table is unreachable" }, checks },
          };
    },

    /** `GET /metrics`: Prometheus text format. */
    async metrics(): Promise<ApiResponse> {
      const { contentType, body } = await metricsText();
      return { status: 200, headers: { "content-type": contentType }, body };
    },
  };
}

export type Ingest = ReturnType<typeof createIngest>;
