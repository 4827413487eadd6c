import type { ResultEvent } from "../../events/index.ts";

/**
 * The message size deepqueue stays within, body and attributes together: SQS's
 * long-standing 256 KiB (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html).
 * Newer queues may take up to 1 MiB, but a queue's `MaximumMessageSize` can be
 * lower, so the pipeline does not rely on more.
 */
export const SQS_MAX_MESSAGE_BYTES = 256 * 1024;
/** Room kept for message attributes and the delivery envelope around a result event. */
export const CLAIM_CHECK_HEADROOM_BYTES = 4 * 1024;

/**
 * A result event with the claim check applied: CloudEvents' `dataref`
 * extension (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/extensions/dataref.md)
 * points at the full record, and `data.result.text` is emptied.
 */
export type ResultEventWithRef = ResultEvent & { dataref?: string };

/** The request record's path in the HTTP API, the claim check's reference. */
function recordPath(requestId: string): string {
  return `/v1/requests/${encodeURIComponent(requestId)}`;
}

/** UTF-8 size of a JSON value as sent. */
function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/**
 * Returns `event` unchanged when it fits in `maxBytes`, else the claim check:
 * the same event (same id, type, status, usage, metadata) without
 * `result.text`, with `dataref` = the record's path. Consumers fetch the
 * full record with `GET /v1/requests/{id}` (DeepqueueClient.get does).
 * Only the answer text can be large: metadata is ≤ 4 KiB.
 *
 * @example const onQueue = claimCheck(event, SQS_MAX_MESSAGE_BYTES - CLAIM_CHECK_HEADROOM_BYTES);
 */
export function claimCheck(event: ResultEvent, maxBytes: number): ResultEventWithRef {
  if (jsonBytes(event) <= maxBytes || !event.data.result) return event;
  return {
    ...event,
    dataref: recordPath(event.subject),
    data: { ...event.data, result: { ...event.data.result, text: "" } },
  };
}
