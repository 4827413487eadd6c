import { lookup as dnsLookup } from "node:dns/promises";
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
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
import { dlqName, queueName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import { ResultPublisher, resultEvent } from "../shared/results.ts";
import type { CallbackAttempt, RequestStore } from "../shared/stores/requests.ts";
import { activeSecrets, type TenantStore } from "../shared/stores/tenants.ts";
import { ATTR, type Span, spanTraceparent, startConsumerSpan, traced } from "../shared/tracing.ts";
import { DELIVER_DEFAULTS } from "./config.ts";
import { type CallbackOutcome, postCallback, retryDelaySeconds, signWebhook } from "./webhook.ts";

/** SQS's longest per-message delay (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-timers.html); longer waits are chained. */
export const MAX_DELAY_SECONDS = 900;
/** A message that arrives this close to its retry time runs now rather than being deferred again (SQS delays are whole seconds). */
export const EARLY_TOLERANCE_MS = 1000;

/**
 * Retry state travels in the delivery message itself, as CloudEvents
 * extension attributes on its envelope (lower-case alphanumeric names, per
 * the spec), so it survives any runtime that hands the handler only the body.
 */
export const DELIVERY_EXTENSIONS = {
  /** Callback attempts made so far. */
  attempt: "dqattempt",
  /** ISO time before which the next attempt must not start (chains delays past 15 minutes). */
  notBefore: "dqnotbefore",
  /** True once the result event is on the tenant's result queue: retries do not put it again. */
  published: "dqpublished",
  /** On dead-lettered messages: why delivery gave up. */
  failure: "dqfailure",
} as const;

const attempts = counter("deepqueue_callback_attempts_total", "Webhook callback attempts by outcome", [
  "outcome",
]);
const failures = counter(
  "deepqueue_callback_failures_total",
  "Webhook deliveries given up: exhausted (retries used up), gone (410), refused (address check), unsigned (no secret)",
  ["reason"],
);
const latency = histogram("deepqueue_callback_duration_seconds", "Time a receiver took to answer a callback");

export interface DeliverDeps {
  sqs: SQSClient;
  requests: RequestStore;
  tenants: Pick<TenantStore, "get">;
  prefix: string;
  /** Dev mode: loopback callbacks allowed. */
  devMode: boolean;
  /** Seconds before each retry (config.ts RETRY_SCHEDULE_SECONDS / DEV_RETRY_SCHEDULE_SECONDS). */
  schedule: readonly number[];
  logger: Logger;
  queues?: QueueUrls;
  /** @default 15 000 */
  callbackTimeoutMs?: number;
  /** @default DELIVER_DEFAULTS.jitter */
  jitter?: number;
  /** DNS for the delivery-time address check; injectable for tests. @default node:dns */
  lookup?: Lookup;
  now?: () => number;
  random?: () => number;
  /** Largest result event put on a result queue before the claim check applies. */
  maxEventBytes?: number;
}

const lookupAll: Lookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** What handling one delivery message came to (logged, and asserted by tests). */
export type DeliveryOutcome =
  | { kind: "published" }
  | { kind: "delivered"; attempts: number }
  | { kind: "already-delivered" }
  | { kind: "retry-scheduled"; attempts: number; delaySeconds: number; error: string }
  | { kind: "deferred"; delaySeconds: number }
  | { kind: "failed"; reason: "exhausted" | "gone" | "refused" | "unsigned"; attempts: number; error: string }
  | { kind: "invalid"; error: string };

type Envelope = Record<string, unknown> & { data?: { event?: Record<string, unknown> } };

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
 * const deliverer = createDeliverer({ sqs, requests, tenants, prefix, devMode: false, schedule: RETRY_SCHEDULE_SECONDS, logger });
 * await deliverer.deliver(record.body);
 */
export function createDeliverer(deps: DeliverDeps) {
  const queues = deps.queues ?? new QueueUrls(deps.sqs);
  const now = deps.now ?? Date.now;
  const timeoutMs = deps.callbackTimeoutMs ?? DELIVER_DEFAULTS.callbackTimeoutSeconds * 1000;
  const maxEventBytes = deps.maxEventBytes ?? SQS_MAX_MESSAGE_BYTES - CLAIM_CHECK_HEADROOM_BYTES;
  const deliveryQueue = queueName(deps.prefix, "delivery");

  async function send(queue: string, body: string, delaySeconds = 0): Promise<void> {
    await deps.sqs.send(
      new SendMessageCommand({
        QueueUrl: await queues.get(queue),
        MessageBody: body,
        ...(delaySeconds > 0 ? { DelaySeconds: Math.min(MAX_DELAY_SECONDS, Math.ceil(delaySeconds)) } : {}),
      }),
    );
  }

  /** Re-sends the message to run again at `notBefore`, carrying the retry state. */
  async function requeue(raw: Envelope, state: { attempt: number; notBefore: number }): Promise<number> {
    const delaySeconds = Math.max(0, (state.notBefore - now()) / 1000);
    const body = {
      ...raw,
      [DELIVERY_EXTENSIONS.attempt]: state.attempt,
      [DELIVERY_EXTENSIONS.notBefore]: new Date(state.notBefore).toISOString(),
      [DELIVERY_EXTENSIONS.published]: true,
    };
    await send(deliveryQueue, JSON.stringify(body), delaySeconds);
    return delaySeconds;
  }

  async function deadLetter(raw: Envelope | string, failure: string): Promise<void> {
    const body =
      typeof raw === "string"
        ? raw
        : JSON.stringify({
            ...Object.fromEntries(
              Object.entries(raw).filter(
                ([k]) => k !== DELIVERY_EXTENSIONS.attempt && k !== DELIVERY_EXTENSIONS.notBefore,
              ),
            ),
            [DELIVERY_EXTENSIONS.failure]: failure,
          });
    // Attempts are dropped, so a redriven message (`deepqueue redrive delivery`) starts a fresh schedule.
    await send(dlqName(deliveryQueue), body);
  }

  async function setDelivery(
    requestId: string,
    state: DeliveryState,
    attempt?: CallbackAttempt,
  ): Promise<void> {
    try {
      await deps.requests.setDelivery(requestId, state, attempt);
    } catch (error) {
      // The record is gone (retention passed): nothing left to show the state in.
      if (!isConditionFailure(error)) throw error;
      deps.logger.warn({ request_id: requestId }, "request record gone; delivery state not recorded");
    }
  }

  const results = new ResultPublisher(deps.sqs, queues, deps.prefix, maxEventBytes);

  async function publish(
    request: DeliveryRequest,
    rawEvent: Record<string, unknown>,
    traceparent: string | undefined,
  ): Promise<void> {
    // The raw event keeps any extension (dataref, traceparent) the schema does not name.
    await results.publish(request.tenant, {
      ...rawEvent,
      ...request.event,
      ...(traceparent ? { traceparent } : {}),
    } as ResultEvent);
  }

  /** The full event for the callback body (HTTP has no 256 KiB limit): rehydrates a claim check. */
  async function fullEvent(
    request: DeliveryRequest,
    rawEvent: Record<string, unknown>,
  ): Promise<ResultEvent> {
    if (typeof rawEvent.dataref !== "string") return request.event;
    const stored = await deps.requests.get(request.event.subject);
    if (!stored || (stored.status !== "completed" && stored.status !== "failed")) return request.event;
    const rebuilt = resultEvent(stored);
    return { ...rebuilt, id: request.event.id, time: request.event.time };
  }

  async function giveUp(
    raw: Envelope,
    request: DeliveryRequest,
    reason: "exhausted" | "gone" | "refused" | "unsigned",
    attempt: number,
    error: string,
    posted?: CallbackAttempt,
  ): Promise<DeliveryOutcome> {
    // 410 is the receiver's "stop": redriving it would be pointless, so it does not dead-letter.
    if (reason !== "gone") await deadLetter(raw, `${reason}: ${error}`);
    await setDelivery(
      request.event.subject,
      {
        status: "failed",
        attempts: attempt,
        last_attempt_at: new Date(now()).toISOString(),
        last_error: error,
      },
      posted,
    );
    failures.inc({ reason });
    deps.logger.warn(
      { request_id: request.event.subject, tenant: request.tenant, reason, attempts: attempt, error },
      "callback delivery failed",
    );
    return { kind: "failed", reason, attempts: attempt, error };
  }

  /** Handles one delivery message (`messageId` only names it on its span). */
  async function deliver(body: string, messageId?: string): Promise<DeliveryOutcome> {
    let raw: Envelope;
    try {
      raw = JSON.parse(body) as Envelope;
    } catch {
      await deadLetter(body, "invalid: not JSON");
      return { kind: "invalid", error: "not JSON" };
    }
    const parsed = deliveryRequestedEventSchema.safeParse(raw);
    if (!parsed.success) {
      // A malformed message can never succeed: straight to the DLQ for a human, not five receives first.
      const error = describeIssues(parsed.error);
      await deadLetter(typeof raw === "object" && raw ? raw : body, `invalid: ${error}`);
      deps.logger.error({ error }, "invalid delivery message dead-lettered");
      return { kind: "invalid", error };
    }
    const request = parsed.data.data;
    const span = startConsumerSpan("deliver", deliveryQueue, messageId, parsed.data.traceparent, {
      id: request.event.subject,
      tenant: request.tenant,
    });
    if (!span) return handle(raw, request, undefined);
    return traced(span, async () => {
      const outcome = await handle(raw, request, span);
      span.setAttribute(ATTR.outcome, outcome.kind);
      return outcome;
    });
  }

  async function handle(
    raw: Envelope,
    request: DeliveryRequest,
    span: Span | undefined,
  ): Promise<DeliveryOutcome> {
    const traceparent = spanTraceparent(span);
    const rawEvent = (raw.data?.event ?? {}) as Record<string, unknown>;
    const attempt = Number(raw[DELIVERY_EXTENSIONS.attempt] ?? 0) || 0;
    const notBefore = Date.parse(String(raw[DELIVERY_EXTENSIONS.notBefore] ?? ""));
    const requestId = request.event.subject;

    if (Number.isFinite(notBefore) && notBefore - now() > EARLY_TOLERANCE_MS) {
      const delaySeconds = await requeue(raw, { attempt, notBefore });
      return { kind: "deferred", delaySeconds };
    }
    if (raw[DELIVERY_EXTENSIONS.published] !== true) await publish(request, rawEvent, traceparent);
    if (!request.callback_url) return { kind: "published" };

    const stored = await deps.requests.get(requestId);
    // A duplicate delivery message (a repeated terminal transition upstream) must not call twice.
    if (stored?.delivery?.status === "delivered") return { kind: "already-delivered" };

    // The addresses the check approves are the ones the POST connects to (no second DNS answer).
    let approved: string | undefined;
    const lookup: Lookup = async (hostname) => {
      const addresses = await (deps.lookup ?? lookupAll)(hostname);
      approved = addresses[0]?.address;
      return addresses;
    };
    try {
      await checkCallbackUrl(request.callback_url, { devMode: deps.devMode, lookup });
    } catch (error) {
      if (!(error instanceof InvalidCallbackUrlError)) throw error;
      attempts.inc({ outcome: "refused" });
      return giveUp(
        raw,
        request,
        "refused",
        attempt,
        `callback address refused at delivery: ${error.message}`,
      );
    }

    const tenant = await deps.tenants.get(request.tenant);
    const secrets = tenant ? activeSecrets(tenant, new Date(now())) : [];
    if (secrets.length === 0) {
      return giveUp(
        raw,
        request,
        "unsigned",
        attempt,
        `tenant ${request.tenant} has no active webhook secret`,
      );
    }

    const full = await fullEvent(request, rawEvent);
    const event = traceparent ? { ...full, traceparent } : full;
    const payload = JSON.stringify(event);
    const headers = signWebhook(secrets, event.id, new Date(now()), payload);
    if (traceparent) headers.traceparent = traceparent;
    const started = performance.now();
    const outcome: CallbackOutcome = await postCallback(request.callback_url, payload, headers, {
      timeoutMs,
      now,
      ...(approved ? { address: approved } : {}),
    });
    latency.observe((performance.now() - started) / 1000);
    attempts.inc({ outcome: outcome.kind });
    const made = attempt + 1;
    const at = new Date(now()).toISOString();
    const posted: CallbackAttempt = {
      at,
      outcome: outcome.kind,
      ...(outcome.status !== undefined ? { status: outcome.status } : {}),
      ...(outcome.kind === "retry" ? { error: outcome.error } : {}),
    };

    if (outcome.kind === "delivered") {
      await setDelivery(requestId, { status: "delivered", attempts: made, last_attempt_at: at }, posted);
      deps.logger.debug(
        { request_id: requestId, attempts: made, status: outcome.status },
        "callback delivered",
      );
      return { kind: "delivered", attempts: made };
    }
    if (outcome.kind === "gone") {
      return giveUp(raw, request, "gone", made, "receiver answered 410 Gone: delivery stopped", posted);
    }
    const delaySeconds = retryDelaySeconds(made, deps.schedule, {
      jitter: deps.jitter ?? DELIVER_DEFAULTS.jitter,
      maxRetryAfterSeconds: DELIVER_DEFAULTS.maxRetryAfterSeconds,
      ...(outcome.retryAfterSeconds !== undefined ? { retryAfterSeconds: outcome.retryAfterSeconds } : {}),
      ...(deps.random ? { random: deps.random } : {}),
    });
    if (delaySeconds === undefined) {
      return giveUp(
        raw,
        request,
        "exhausted",
        made,
        `${made} attempts failed; last: ${outcome.error}`,
        posted,
      );
    }
    // Record first: if the re-send then fails, SQS redelivers this message and the attempt repeats.
    await setDelivery(
      requestId,
      {
        status: "pending",
        attempts: made,
        last_attempt_at: at,
        last_error: outcome.error,
      },
      posted,
    );
    await requeue(raw, { attempt: made, notBefore: now() + delaySeconds * 1000 });
    deps.logger.info(
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

  return { deliver };
}

export type Deliverer = ReturnType<typeof createDeliverer>;
