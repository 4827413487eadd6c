import { lookup as dnsLookup } from "node:dns/promises";
import type { SQSClient } from "@aws-sdk/client-sqs";
import {
  type DeliveryRequest,
  type DeliveryState,
  deliveryRequestedEventSchema,
  describeIssues,
  type ResultEvent,
} from "../../events/index.ts";
import { checkCallbackUrl, type Lookup } from "../shared/callback-url.ts";
import { CLAIM_CHECK_HEADROOM_BYTES, SQS_MAX_MESSAGE_BYTES } from "../shared/claim-check.ts";
import { isConditionFailure } from "../shared/dynamo.ts";
import { InvalidCallbackUrlError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { counter, histogram } from "../shared/metrics.ts";
import { DEFAULT_PREFIX } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import { ResultPublisher, resultEvent } from "../shared/results.ts";
import type { CallbackAttempt, RequestStore } from "../shared/stores/requests.ts";
import { activeSecrets, type TenantStore } from "../shared/stores/tenants.ts";
import { ATTR, type Span, spanTraceparent, startConsumerSpan, traced } from "../shared/tracing.ts";
import { DELIVER_DEFAULTS } from "./config.ts";
import { DELIVERY_EXTENSIONS, DeliveryQueue, type Envelope, retryState } from "./delivery-queue.ts";
import { type CallbackOutcome, postCallback, retryDelaySeconds, signWebhook } from "./webhook.ts";

const attempts = counter("deepqueue_callback_attempts_total", "Webhook callback attempts by outcome", [
  "outcome",
]);
const failures = counter(
  "deepqueue_callback_failures_total",
  "Webhook deliveries given up: exhausted (retries used up), gone (410), refused (address check), unsigned (no secret)",
  ["reason"],
);
const latency = histogram("deepqueue_callback_duration_seconds", "Time a receiver took to answer a callback");

/** The dependencies deliver cannot do without. */
export interface DeliverDeps {
  sqs: SQSClient;
  requests: RequestStore;
  tenants: Pick<TenantStore, "get">;
  logger: Logger;
}

/** Deliver's dependencies and settings; each setting defaults from DELIVER_DEFAULTS. */
export interface DeliverOptions extends DeliverDeps {
  /** Resource-name prefix (DEEPQUEUE_PREFIX). */
  prefix?: string;
  /** Dev mode: loopback callbacks allowed. */
  devMode?: boolean;
  /** Seconds before each retry (config.ts retrySchedule). */
  schedule?: readonly number[];
  /** Shared queue URL resolver; one of its own by default. */
  queueUrls?: QueueUrls;
  callbackTimeoutMs?: number;
  /** ± this fraction of each scheduled delay is random. */
  jitter?: number;
  /** DNS for the delivery-time address check; injectable for tests. @default node:dns */
  lookup?: Lookup;
  /** The POST of one signed callback; injectable for tests. @default webhook.ts postCallback */
  post?: typeof postCallback;
  now?: () => number;
  random?: () => number;
  /** Largest result event put on a result queue before the claim check applies. */
  maxEventBytes?: number;
}

const lookupAll: Lookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** A message this close to its retry time runs now rather than being deferred again (SQS delays are whole seconds). */
const EARLY_TOLERANCE_MS = 1000;

/** What handling one delivery message came to (logged, and asserted by tests). */
export type DeliveryOutcome =
  | { kind: "published" }
  | { kind: "delivered"; attempts: number }
  | { kind: "already-delivered" }
  | { kind: "retry-scheduled"; attempts: number; delaySeconds: number; error: string }
  | { kind: "deferred"; delaySeconds: number }
  | { kind: "failed"; reason: FailureReason; attempts: number; error: string }
  | { kind: "invalid"; error: string };

type FailureReason = "exhausted" | "gone" | "refused" | "unsigned";

/** One delivery message being handled. */
interface Delivery {
  raw: Envelope;
  request: DeliveryRequest;
  /** Callback attempts made before this one. */
  attempt: number;
  traceparent: string | undefined;
}

/** Handles the messages of `<prefix>-delivery`: one call per message. */
export interface Deliverer {
  /** Handles one delivery message (`messageId` only names it on its span). A throw means "retry this message". */
  deliver(body: string, messageId?: string): Promise<DeliveryOutcome>;
}

type Settings = DeliverDeps &
  Required<Omit<DeliverOptions, keyof DeliverDeps | "lookup">> & { lookup: Lookup };

/**
 * Delivery of one result event (docs/api.md#webhook-callbacks): onto the tenant's result queue
 * once, then, when the request named a `callback_url`, a signed POST with
 * retries scheduled through the delivery queue (a delayed re-send carrying
 * the attempt count) — never by sleeping. Exhausted deliveries go to the
 * delivery DLQ, count in `deepqueue_callback_failures_total` and show in the
 * request record's `delivery` state.
 *
 * A throw means "retry this message" (SQS redelivers it; after 5 receives
 * it dead-letters): only infrastructure errors throw.
 *
 * @example
 * const deliverer = new ResultDeliverer({ sqs, requests, tenants, logger, schedule: RETRY_SCHEDULE_SECONDS });
 * await deliverer.deliver(record.body);
 */
export class ResultDeliverer implements Deliverer {
  readonly #s: Settings;
  readonly #queue: DeliveryQueue;
  readonly #results: ResultPublisher;

  constructor(options: DeliverOptions) {
    const queueUrls = options.queueUrls ?? new QueueUrls(options.sqs);
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    this.#s = {
      ...options,
      prefix,
      queueUrls,
      devMode: options.devMode ?? false,
      schedule: options.schedule ?? DELIVER_DEFAULTS.schedule,
      callbackTimeoutMs: options.callbackTimeoutMs ?? DELIVER_DEFAULTS.callbackTimeoutSeconds * 1000,
      jitter: options.jitter ?? DELIVER_DEFAULTS.jitter,
      lookup: options.lookup ?? lookupAll,
      post: options.post ?? postCallback,
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      maxEventBytes: options.maxEventBytes ?? SQS_MAX_MESSAGE_BYTES - CLAIM_CHECK_HEADROOM_BYTES,
    };
    this.#queue = new DeliveryQueue(options.sqs, queueUrls, prefix);
    this.#results = new ResultPublisher(options.sqs, queueUrls, prefix, this.#s.maxEventBytes);
  }

  async deliver(body: string, messageId?: string): Promise<DeliveryOutcome> {
    let raw: Envelope;
    try {
      raw = JSON.parse(body) as Envelope;
    } catch {
      await this.#queue.deadLetter(body, "invalid: not JSON");
      return { kind: "invalid", error: "not JSON" };
    }
    const parsed = deliveryRequestedEventSchema.safeParse(raw);
    if (!parsed.success) {
      // A malformed message can never succeed: straight to the DLQ for a human, not five receives first.
      const error = describeIssues(parsed.error);
      await this.#queue.deadLetter(typeof raw === "object" && raw ? raw : body, `invalid: ${error}`);
      this.#s.logger.error({ error }, "invalid delivery message dead-lettered");
      return { kind: "invalid", error };
    }
    const request = parsed.data.data;
    const span = startConsumerSpan("deliver", this.#queue.name, messageId, parsed.data.traceparent, {
      id: request.event.subject,
      tenant: request.tenant,
    });
    return traced(span, async () => {
      const outcome = await this.#handle(raw, request, span);
      span?.setAttribute(ATTR.outcome, outcome.kind);
      return outcome;
    });
  }

  /** Deferral, the result queue, then the callback (when the request named one and it is not delivered yet). */
  async #handle(raw: Envelope, request: DeliveryRequest, span: Span | undefined): Promise<DeliveryOutcome> {
    const { attempt, notBefore } = retryState(raw);
    const now = this.#s.now();
    if (Number.isFinite(notBefore) && notBefore - now > EARLY_TOLERANCE_MS) {
      return { kind: "deferred", delaySeconds: await this.#queue.requeue(raw, { attempt, notBefore }, now) };
    }
    const delivery: Delivery = { raw, request, attempt, traceparent: spanTraceparent(span) };
    if (raw[DELIVERY_EXTENSIONS.published] !== true) await this.#publish(delivery);
    if (!request.callback_url) return { kind: "published" };
    const stored = await this.#s.requests.get(request.event.subject);
    // A duplicate delivery message (a repeated terminal transition upstream) must not call twice.
    if (stored?.delivery?.status === "delivered") return { kind: "already-delivered" };
    return this.#call(delivery, request.callback_url);
  }

  async #publish({ raw, request, traceparent }: Delivery): Promise<void> {
    // The raw event keeps any extension (dataref, traceparent) the schema does not name.
    const event = { ...raw.data?.event, ...request.event } as ResultEvent & { traceparent?: string };
    if (traceparent) event.traceparent = traceparent;
    await this.#results.publish(request.tenant, event);
  }

  /** One signed POST to the callback, after the address check; its outcome recorded. */
  async #call(delivery: Delivery, url: string): Promise<DeliveryOutcome> {
    const approved = await this.#approvedAddress(url);
    if (typeof approved === "object")
      return this.#giveUp(delivery, "refused", delivery.attempt, approved.error);
    const tenant = await this.#s.tenants.get(delivery.request.tenant);
    const secrets = tenant ? activeSecrets(tenant, new Date(this.#s.now())) : [];
    if (secrets.length === 0) {
      const error = `tenant ${delivery.request.tenant} has no active webhook secret`;
      return this.#giveUp(delivery, "unsigned", delivery.attempt, error);
    }
    const full = await this.#fullEvent(delivery);
    const { traceparent } = delivery;
    const event = traceparent ? { ...full, traceparent } : full;
    const payload = JSON.stringify(event);
    const headers = signWebhook(secrets, event.id, new Date(this.#s.now()), payload);
    if (traceparent) headers.traceparent = traceparent;
    const started = performance.now();
    const outcome = await this.#s.post(url, payload, headers, {
      timeoutMs: this.#s.callbackTimeoutMs,
      now: this.#s.now,
      address: approved,
    });
    latency.observe((performance.now() - started) / 1000);
    attempts.inc({ outcome: outcome.kind });
    return this.#afterPost(delivery, outcome);
  }

  /**
   * The address the callback check approves, which the POST then connects to (no second DNS
   * answer); `{ error }` when the check refuses the URL.
   */
  async #approvedAddress(url: string): Promise<string | undefined | { error: string }> {
    let approved: string | undefined;
    const lookup: Lookup = async (hostname) => {
      const addresses = await this.#s.lookup(hostname);
      approved = addresses[0]?.address;
      return addresses;
    };
    try {
      await checkCallbackUrl(url, { devMode: this.#s.devMode, lookup });
    } catch (error) {
      if (!(error instanceof InvalidCallbackUrlError)) throw error;
      attempts.inc({ outcome: "refused" });
      return { error: `callback address refused at delivery: ${error.message}` };
    }
    return approved;
  }

  /** The full event for the callback body (HTTP has no 256 KiB limit): rehydrates a claim check. */
  async #fullEvent({ raw, request }: Delivery): Promise<ResultEvent> {
    if (typeof raw.data?.event?.dataref !== "string") return request.event;
    const stored = await this.#s.requests.get(request.event.subject);
    if (!stored || (stored.status !== "completed" && stored.status !== "failed")) return request.event;
    const rebuilt = resultEvent(stored);
    return { ...rebuilt, id: request.event.id, time: request.event.time };
  }

  /** Delivered, gone (410), or a retry by the schedule until it is used up. */
  async #afterPost(delivery: Delivery, outcome: CallbackOutcome): Promise<DeliveryOutcome> {
    const requestId = delivery.request.event.subject;
    const made = delivery.attempt + 1;
    const at = new Date(this.#s.now()).toISOString();
    const posted: CallbackAttempt = {
      at,
      outcome: outcome.kind,
      status: outcome.status,
      error: outcome.kind === "retry" ? outcome.error : undefined,
    };
    if (outcome.kind === "delivered") {
      await this.#setDelivery(
        requestId,
        { status: "delivered", attempts: made, last_attempt_at: at },
        posted,
      );
      this.#s.logger.debug(
        { request_id: requestId, attempts: made, status: outcome.status },
        "callback delivered",
      );
      return { kind: "delivered", attempts: made };
    }
    if (outcome.kind === "gone") {
      return this.#giveUp(delivery, "gone", made, "receiver answered 410 Gone: delivery stopped", posted);
    }
    return this.#retryLater(delivery, outcome, posted);
  }

  /** The next attempt by the schedule (or the receiver's Retry-After), or giving up once it is used up. */
  async #retryLater(
    delivery: Delivery,
    outcome: Extract<CallbackOutcome, { kind: "retry" }>,
    posted: CallbackAttempt,
  ): Promise<DeliveryOutcome> {
    const requestId = delivery.request.event.subject;
    const made = delivery.attempt + 1;
    const delaySeconds = retryDelaySeconds(made, this.#s.schedule, {
      jitter: this.#s.jitter,
      maxRetryAfterSeconds: DELIVER_DEFAULTS.maxRetryAfterSeconds,
      retryAfterSeconds: outcome.retryAfterSeconds,
      random: this.#s.random,
    });
    if (delaySeconds === undefined) {
      return this.#giveUp(
        delivery,
        "exhausted",
        made,
        `${made} attempts failed; last: ${outcome.error}`,
        posted,
      );
    }
    // Record first: if the re-send then fails, SQS redelivers this message and the attempt repeats.
    const state = {
      status: "pending",
      attempts: made,
      last_attempt_at: posted.at,
      last_error: outcome.error,
    } as const;
    await this.#setDelivery(requestId, state, posted);
    const now = this.#s.now();
    await this.#queue.requeue(delivery.raw, { attempt: made, notBefore: now + delaySeconds * 1000 }, now);
    this.#s.logger.info(
      {
        request_id: requestId,
        attempts: made,
        delay_seconds: Math.round(delaySeconds),
        error: outcome.error,
      },
      "callback failed; retry scheduled",
    );
    return { kind: "retry-scheduled", attempts: made, delaySeconds, error: outcome.error };
  }

  async #giveUp(
    { raw, request }: Delivery,
    reason: FailureReason,
    attempt: number,
    error: string,
    posted?: CallbackAttempt,
  ): Promise<DeliveryOutcome> {
    // 410 is the receiver's "stop": redriving it would be pointless, so it does not dead-letter.
    if (reason !== "gone") await this.#queue.deadLetter(raw, `${reason}: ${error}`);
    const last_attempt_at = new Date(this.#s.now()).toISOString();
    await this.#setDelivery(
      request.event.subject,
      { status: "failed", attempts: attempt, last_attempt_at, last_error: error },
      posted,
    );
    failures.inc({ reason });
    this.#s.logger.warn(
      { request_id: request.event.subject, tenant: request.tenant, reason, attempts: attempt, error },
      "callback delivery failed",
    );
    return { kind: "failed", reason, attempts: attempt, error };
  }

  async #setDelivery(requestId: string, state: DeliveryState, attempt?: CallbackAttempt): Promise<void> {
    try {
      await this.#s.requests.setDelivery(requestId, state, attempt);
    } catch (error) {
      // The record is gone (retention passed): nothing left to show the state in.
      if (!isConditionFailure(error)) throw error;
      this.#s.logger.warn({ request_id: requestId }, "request record gone; delivery state not recorded");
    }
  }
}
