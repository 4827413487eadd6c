import type { SQSClient } from "@aws-sdk/client-sqs";
import { LRUCache } from "lru-cache";
import {
  buildEvent,
  type DeliveryRequest,
  type DeliveryRequestedEvent,
  EVENT_TYPES,
  type ReplyMessage,
  type ResultEvent,
} from "../../events/index.ts";
import { CLAIM_CHECK_HEADROOM_BYTES, claimCheck, SQS_MAX_MESSAGE_BYTES } from "./claim-check.ts";
import { DeepqueueError } from "./errors.ts";
import { childTraceparent, newEventId } from "./ids.ts";
import { counter } from "./metrics.ts";
import { queueName, resultQueueName } from "./names.ts";
import type { QueueUrls } from "./queues.ts";
import { BatchSender } from "./sqs-records.ts";
import { type StoredRequest, toPublicRecord } from "./stores/requests.ts";

/**
 * The result event's id is derived from the request id, so every repeat of a
 * terminal transition (a redelivered message, a restarted worker) emits the
 * same event id and consumers can dedupe on it.
 *
 * @example resultEventId("req_0193ab") // "evt_req_0193ab"
 */
export function resultEventId(requestId: string): string {
  return `evt_${requestId}`;
}

/**
 * The result event (docs/api.md#events) of a terminal record. Its `traceparent` is the emitting
 * span's when tracing is on (`traceparent`), else the record's.
 */
export function resultEvent(
  stored: StoredRequest,
  traceparent: string | undefined = stored.traceparent,
): ResultEvent {
  if (stored.status !== "completed" && stored.status !== "failed") {
    throw new DeepqueueError(`request ${stored.id} is ${stored.status}, not terminal`);
  }
  return buildEvent({
    id: resultEventId(stored.id),
    type: stored.status === "completed" ? EVENT_TYPES.requestCompleted : EVENT_TYPES.requestFailed,
    subject: stored.id,
    time: stored.completed_at ?? new Date().toISOString(),
    data: toPublicRecord(stored),
    traceparent,
  });
}

/**
 * The delivery-queue message for a terminal record. A result too large for an
 * SQS message travels claim-checked (functions/shared/claim-check.ts): deliver
 * reads the full record back for the callback. `traceparent`: the emitting span's, when
 * tracing is on (deliver's span then continues it); else a child of the record's.
 */
export function deliveryEvent(stored: StoredRequest, traceparent?: string): DeliveryRequestedEvent {
  const data: DeliveryRequest = {
    tenant: stored.tenant,
    event: claimCheck(
      resultEvent(stored, traceparent ?? stored.traceparent),
      SQS_MAX_MESSAGE_BYTES - CLAIM_CHECK_HEADROOM_BYTES,
    ),
    callback_url: stored.request.callback_url,
  };
  return buildEvent({
    id: newEventId(),
    type: EVENT_TYPES.deliveryRequested,
    subject: stored.id,
    data,
    traceparent: traceparent ?? childTraceparent(stored.traceparent),
  });
}

/**
 * The `done` reply message of a terminal record (its `record` = the result event's `data`). Too
 * large for an SQS message, it travels claim-checked like the result event: `record.result.text`
 * emptied and `dataref` = the record's path.
 */
export function doneMessage(
  stored: StoredRequest,
  maxBytes: number = SQS_MAX_MESSAGE_BYTES - CLAIM_CHECK_HEADROOM_BYTES,
): ReplyMessage {
  const event = claimCheck(resultEvent(stored), maxBytes);
  return { type: "done", request_id: stored.id, record: event.data, dataref: event.dataref };
}

/** Reply queues kept a sender for at once (one per ingest replica; a gone replica's ages out). */
const REPLY_SENDERS_KEPT = 256;

const replies = counter(
  "deepqueue_reply_messages_total",
  "Messages sent to callers' reply queues (streamed deltas and done), by outcome",
  ["type", "outcome"],
);

const published = counter(
  "deepqueue_results_published_total",
  "Result events put on tenant result queues, by whether the claim check applied",
  ["claim_check"],
);

/**
 * Puts result events on tenants' result queues, through one BatchSender per
 * queue (events finished together go out in one SendMessageBatch). Used where
 * a request ends: the batcher and the cache stage publish directly when the
 * request has no callback (no delivery-queue hop), and deliver publishes the
 * rest before it calls back. The event id is the request's, so a repeat is
 * a duplicate consumers drop.
 *
 * @example const results = new ResultPublisher(sqs, queueUrls, "deepqueue"); await results.publish("acme", resultEvent(stored));
 */
export class ResultPublisher {
  readonly #senders = new Map<string, BatchSender>();
  /** To `<prefix>-batches`, made on the first batch line. */
  #batches: BatchSender | undefined;
  readonly #replySenders = new LRUCache<string, BatchSender>({ max: REPLY_SENDERS_KEPT });

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrls: QueueUrls,
    private readonly prefix: string,
    private readonly maxEventBytes: number = SQS_MAX_MESSAGE_BYTES - CLAIM_CHECK_HEADROOM_BYTES,
  ) {}

  /** Publishes `event` (claim-checked when too large for a message) to `tenant`'s result queue. */
  async publish(tenant: string, event: ResultEvent): Promise<void> {
    let body = JSON.stringify(event);
    const checked = Buffer.byteLength(body) > this.maxEventBytes;
    if (checked) body = JSON.stringify(claimCheck(event, this.maxEventBytes));
    await this.#sender(tenant).send(body);
    published.inc({ claim_check: checked && event.data.result ? "true" : "false" });
  }

  /**
   * A batch line ended (POST /v1/batches): the batch worker counts it, and its result goes into
   * the batch's output or error file instead of a result event of its own.
   */
  async lineFinished(stored: StoredRequest): Promise<void> {
    const batch = stored.request.batch;
    if (!batch || (stored.status !== "completed" && stored.status !== "failed")) return;
    this.#batches ??= new BatchSender(this.sqs, () => this.queueUrls.get(queueName(this.prefix, "batches")));
    await this.#batches.send({
      type: "line_finished",
      batch_id: batch.id,
      request_id: stored.id,
      line: batch.line,
      status: stored.status,
    });
  }

  /**
   * Sends a reply message to a waiting caller's reply queue (SendMessageBatch with the other
   * messages to that queue). Never throws: the caller may be gone with its queue, and the request's
   * result still goes out as usual. Resolves to whether the message was sent.
   */
  async reply(queueUrl: string, message: ReplyMessage): Promise<boolean> {
    let sender = this.#replySenders.get(queueUrl);
    if (!sender) {
      sender = new BatchSender(this.sqs, async () => queueUrl);
      this.#replySenders.set(queueUrl, sender);
    }
    try {
      await sender.send(message);
      replies.inc({ type: message.type, outcome: "sent" });
      return true;
    } catch {
      replies.inc({ type: message.type, outcome: "failed" });
      return false;
    }
  }

  #sender(tenant: string): BatchSender {
    const queue = resultQueueName(this.prefix, tenant);
    let sender = this.#senders.get(queue);
    if (!sender) {
      sender = new BatchSender(this.sqs, () => this.queueUrls.get(queue));
      this.#senders.set(queue, sender);
    }
    return sender;
  }
}

/**
 * Hands a terminal record on: a request with a `callback_url` goes through the
 * delivery queue (deliver publishes and calls back, with retries); any other
 * goes straight to its tenant's result queue — the delivery hop would only
 * forward it. A batch line's end goes to the batch worker (`<prefix>-batches`) instead.
 *
 * A request whose caller waits on an ingest replica (`reply`) also gets its `done` reply message
 * there, whatever ended it (the model, a degradation level, a failure, a cache hit).
 *
 * `traceparent` is the handing span's (tracing on), carried by what is sent.
 *
 * @example await handOn(stored, { results, delivery }, spanTraceparent(span));
 */
export async function handOn(
  stored: StoredRequest,
  to: { results: ResultPublisher; delivery: BatchSender },
  traceparent?: string,
): Promise<void> {
  const reply = stored.request.reply;
  await Promise.all([
    stored.request.batch
      ? to.results.lineFinished(stored)
      : stored.request.callback_url
        ? to.delivery.send(deliveryEvent(stored, traceparent))
        : to.results.publish(stored.tenant, resultEvent(stored, traceparent ?? stored.traceparent)),
    reply ? to.results.reply(reply.queue_url, doneMessage(stored)) : undefined,
  ]);
}
