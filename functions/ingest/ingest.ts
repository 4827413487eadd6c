import { GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import {
  type AcceptedResponse,
  describeIssues,
  LIMITS,
  type SubmitBody,
  submitBodySchema,
} from "../../events/index.ts";
import { checkCallbackUrl } from "../shared/callback-url.ts";
import {
  HttpError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  type RateLimitedError,
} from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { counter, histogram, metricsText } from "../shared/metrics.ts";
import { DEFAULT_PREFIX, queueName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import type { ConversationStore } from "../shared/stores/conversations.ts";
import type { IdempotencyStore } from "../shared/stores/idempotency.ts";
import { type RequestStore, toPublicRecord } from "../shared/stores/requests.ts";
import type { UsageStore } from "../shared/stores/usage.ts";
import {
  ATTR,
  endSpan,
  type Span,
  SpanKind,
  SpanStatusCode,
  startSpan,
  tracingEnabled,
} from "../shared/tracing.ts";
import { type Accepted, Acceptor, orUnavailable, quotaRejections } from "./accept.ts";
import type { Admission } from "./admission.ts";
import type { ApiRequest, ApiResponse } from "./api-request.ts";
import type { Authenticator, Principal } from "./auth.ts";

/** What serveHttp's `preflight` sees of a request before its body is read. */
export type { ApiRequest, ApiResponse } from "./api-request.ts";

export interface PreflightRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

/** The dependencies ingest cannot do without. */
export interface IngestDeps {
  sqs: SQSClient;
  requests: RequestStore;
  usage: UsageStore;
  idempotency: IdempotencyStore<AcceptedResponse>;
  conversations: ConversationStore;
  auth: Authenticator;
  /** Rate limit, abuse budget, token floor and off-loop count, in-flight limit (admission.ts). */
  admission: Admission;
  logger: Logger;
  /** `model` when the body names none (DEEPQUEUE_MODEL, whose default the environment schema holds). */
  defaultModel: string;
}

/** Ingest's dependencies and its settings, each setting defaulted from INGEST_DEFAULTS. */
export interface IngestOptions extends IngestDeps {
  /** Resource-name prefix (DEEPQUEUE_PREFIX). */
  prefix?: string;
  /** Allows loopback callback URLs (DEEPQUEUE_DEV_MODE). */
  devMode?: boolean;
  /** Callback URL check (DNS injectable in tests). */
  checkCallback?: typeof checkCallbackUrl;
  /** Shared queue URL resolver; one of its own by default. */
  queueUrls?: QueueUrls;
}

const INGEST_DEFAULTS = {
  prefix: DEFAULT_PREFIX,
  devMode: false,
  checkCallback: checkCallbackUrl,
} as const;

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
  quotaRejections,
} as const;

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

/** The HTTP API of docs/api.md#http-api, one method per route, plus what serveHttp asks of it. */
export interface Ingest {
  /** `POST /v1/requests`. */
  submit(req: ApiRequest): Promise<ApiResponse>;
  /** `GET /v1/requests/{id}`. */
  getRequest(req: ApiRequest): Promise<ApiResponse>;
  /** `GET /v1/conversations/{id}`. */
  getConversation(req: ApiRequest): Promise<ApiResponse>;
  /** `GET /healthz`. */
  health(): Promise<ApiResponse>;
  /** `GET /metrics`. */
  metrics(): Promise<ApiResponse>;
  /** A refusal decided before the body is read, or undefined to read it. */
  preflight(request: PreflightRequest): RateLimitedError | undefined;
  /** Writes what the process holds in memory (unlimited tenants' usage). */
  close(): Promise<void>;
}

/** How one submission went, for its metric, log line and span. */
interface SubmitTrace {
  started: number;
  span: Span | undefined;
  principal?: Principal;
  outcome: string;
  status: number;
}

const roundMs = (ms: number) => Math.round(ms * 100) / 100;

/**
 * The ingest logic (docs/api.md#http-api): auth → admission → validation →
 * the write path (accept.ts: idempotency → quota → record → requests-queue message).
 *
 * @example
 * const ingest = new IngestApi(deps);
 * const res = await ingest.submit({ headers, body, params: {} }); // { status: 202, body: { id, ... } }
 */
export class IngestApi implements Ingest {
  readonly #options: IngestDeps & Required<Omit<IngestOptions, keyof IngestDeps>>;
  readonly #acceptor: Acceptor;
  readonly #requestsQueue: string;

  constructor(options: IngestOptions) {
    this.#options = {
      ...options,
      prefix: options.prefix ?? INGEST_DEFAULTS.prefix,
      devMode: options.devMode ?? INGEST_DEFAULTS.devMode,
      checkCallback: options.checkCallback ?? INGEST_DEFAULTS.checkCallback,
      queueUrls: options.queueUrls ?? new QueueUrls(options.sqs),
    };
    this.#requestsQueue = queueName(this.#options.prefix, "requests");
    this.#acceptor = new Acceptor(this.#options);
  }

  async submit(req: ApiRequest): Promise<ApiResponse> {
    const trace: SubmitTrace = {
      started: performance.now(),
      span: submitSpan(req),
      outcome: "internal_error",
      status: 500,
    };
    let leave: (() => void) | undefined;
    try {
      leave = this.#options.admission.enter();
      const accepted = await this.#submit(req, trace);
      trace.outcome = accepted.status === 202 ? "accepted" : "replayed";
      trace.status = accepted.status;
      // RFC 9110 §15.3.3: a 202 should point at where the request's status can be watched.
      return {
        status: accepted.status,
        headers: { location: accepted.response.status_url },
        body: accepted.response,
      };
    } catch (error) {
      await this.#refused(req, trace, error);
      throw error;
    } finally {
      leave?.();
      ingestMetrics.requests.inc({ outcome: trace.outcome });
      endSubmitSpan(trace);
    }
  }

  async #submit(req: ApiRequest, trace: SubmitTrace): Promise<Accepted> {
    const { auth, admission, checkCallback, devMode, logger } = this.#options;
    // serveHttp refuses large bodies while reading; on Lambda, API Gateway lets up to 10 MB through.
    if (Buffer.byteLength(req.body) > LIMITS.bodyBytes) throw new PayloadTooLargeError(LIMITS.bodyBytes);
    const principal = await auth.authenticate(req.headers, req.body, { signed: true });
    trace.principal = principal;
    const tenant = principal.tenant;
    trace.span?.setAttribute(ATTR.tenant, tenant.tenant);
    admission.gate(tenant.tenant);
    const body = parseSubmitBody(req.body);
    const tokens = await admission.promptTokens(body, tenant.tenant);
    if (body.callback_url) await checkCallback(body.callback_url, { devMode });
    const accepted = await this.#acceptor.accept({
      tenant,
      body,
      raw: req.body,
      headers: req.headers,
      tokens,
      span: trace.span,
      reply: req.reply,
    });
    const latency_ms = performance.now() - trace.started;
    if (accepted.status === 202) ingestMetrics.acceptLatency.observe(latency_ms / 1000);
    // Debug only: at info, the one line per request is the batcher's (or the cache's) "request finished".
    logger.debug(
      {
        request_id: accepted.response.id,
        tenant: tenant.tenant,
        prompt_tokens: tokens,
        max_tokens: body.max_tokens,
        latency_ms: roundMs(latency_ms),
        outcome: accepted.status === 202 ? "accepted" : "replayed",
      },
      accepted.status === 202 ? "request accepted" : "idempotent replay",
    );
    return accepted;
  }

  /** A refused submission: charged to the tenant's abuse budget when it caused it, its webhook-id freed. */
  async #refused(req: ApiRequest, trace: SubmitTrace, error: unknown): Promise<void> {
    const { admission, auth, logger } = this.#options;
    const principal = trace.principal;
    trace.outcome = error instanceof HttpError ? error.code : "internal_error";
    trace.status = error instanceof HttpError ? error.status : 500;
    if (principal) admission.charge(principal.tenant.tenant, error, req.body.length);
    if (error instanceof HttpError && error.status < 500) {
      logger.info(
        {
          tenant: principal?.tenant.tenant,
          outcome: trace.outcome,
          latency_ms: roundMs(performance.now() - trace.started),
        },
        "request refused",
      );
    }
    // A refused signed request may be retried with the same webhook-id.
    if (principal?.signatureId) {
      await auth
        .releaseSignature(principal)
        .catch((e) => logger.warn({ err: e }, "could not release the webhook-id"));
    }
  }

  /** Own tenant only; another tenant's id is 404 like an unknown one. */
  async getRequest(req: ApiRequest): Promise<ApiResponse> {
    const principal = await this.#authenticateRead(req);
    const id = req.params.id ?? "";
    const stored = id ? await orUnavailable(this.#options.requests.get(id, { progress: true })) : undefined;
    if (!stored || stored.tenant !== principal.tenant.tenant) throw new NotFoundError(`no request ${id}`);
    return { status: 200, body: toPublicRecord(stored) };
  }

  /** Own tenant only. */
  async getConversation(req: ApiRequest): Promise<ApiResponse> {
    const principal = await this.#authenticateRead(req);
    const id = req.params.id ?? "";
    const conversation = id
      ? await orUnavailable(this.#options.conversations.get(principal.tenant.tenant, id))
      : undefined;
    if (!conversation) throw new NotFoundError(`no conversation ${id}`);
    return { status: 200, body: conversation };
  }

  /** 200 when the requests queue and the requests table answer, else 503. */
  async health(): Promise<ApiResponse> {
    const { queueUrls, sqs, requests } = this.#options;
    const [queue, table] = await Promise.allSettled([
      queueUrls
        .get(this.#requestsQueue)
        .then((QueueUrl) =>
          sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] })),
        ),
      requests.get("healthz"),
    ]);
    const checks = { queue: queue.status === "fulfilled", table: table.status === "fulfilled" };
    if (!checks.queue) queueUrls.forget(this.#requestsQueue);
    return checks.queue && checks.table
      ? { status: 200, body: { status: "ok", checks } }
      : {
          status: 503,
          body: { error: { code: "unavailable", message: "the queue or table is unreachable" }, checks },
        };
  }

  /** Prometheus text format. */
  async metrics(): Promise<ApiResponse> {
    const { contentType, body } = await metricsText();
    return { status: 200, headers: { "content-type": contentType }, body };
  }

  /**
   * A submission from a tenant whose abuse budget or rate limit is spent —
   * known from the tenant lookup, no store call — is refused before its body
   * is read. Anything else goes the full way.
   */
  preflight(request: PreflightRequest): RateLimitedError | undefined {
    if (request.method !== "POST" || request.path !== "/v1/requests") return undefined;
    const authorization = request.headers.authorization;
    const tenant = this.#options.auth.peek(typeof authorization === "string" ? authorization : undefined);
    const refusal = tenant ? this.#options.admission.peek(tenant.tenant) : undefined;
    if (refusal) ingestMetrics.requests.inc({ outcome: refusal.code });
    return refusal;
  }

  async close(): Promise<void> {
    await this.#options.usage.flush?.();
  }

  #authenticateRead(req: ApiRequest): Promise<Principal> {
    return this.#options.auth.authenticate(req.headers, "", { signed: false });
  }
}

/** The submission's server span; an incoming W3C traceparent header is honoured (the caller's trace continues). */
function submitSpan(req: ApiRequest): Span | undefined {
  if (!tracingEnabled()) return undefined;
  return startSpan("POST /v1/requests", {
    parent: req.headers.traceparent,
    kind: SpanKind.SERVER,
    attributes: { [ATTR.function]: "ingest", "http.request.method": "POST", "http.route": "/v1/requests" },
  });
}

function endSubmitSpan({ span, status, outcome }: SubmitTrace): void {
  if (!span) return;
  // A refusal (4xx) is the server working as it should: only a 5xx is an error span.
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
  endSpan(span, undefined, { [ATTR.outcome]: outcome, "http.response.status_code": status });
}
