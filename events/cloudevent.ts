import { z } from "zod";
import { isoTime } from "./common.ts";

/** CloudEvents 1.0 `source` of everything deepqueue emits. */
export const EVENT_SOURCE = "deepqueue";

/** Every event type on deepqueue's queues and callbacks. */
export const EVENT_TYPES = {
  requestAccepted: "deepqueue.request.accepted",
  inferenceRequested: "deepqueue.inference.requested",
  deliveryRequested: "deepqueue.delivery.requested",
  requestCompleted: "deepqueue.request.completed",
  requestFailed: "deepqueue.request.failed",
  batchCompleted: "deepqueue.batch.completed",
  batchFailed: "deepqueue.batch.failed",
  batchExpired: "deepqueue.batch.expired",
  batchCancelled: "deepqueue.batch.cancelled",
} as const;
export type EventType = (typeof EVENT_TYPES)[keyof typeof EVENT_TYPES];

/**
 * A CloudEvents 1.0 JSON envelope (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md)
 * around `data`, with W3C trace context in the `traceparent` extension.
 *
 * @example const schema = cloudEventSchema(z.literal("x.y"), z.object({ n: z.number() }));
 */
export function cloudEventSchema<T extends z.ZodType, D extends z.ZodType>(type: T, data: D) {
  return z.object({
    specversion: z.literal("1.0"),
    id: z.string().min(1),
    source: z.string().min(1),
    type,
    time: isoTime,
    subject: z.string().min(1),
    datacontenttype: z.literal("application/json"),
    traceparent: z.string().optional(),
    /**
     * CloudEvents `dataref` extension (claim check): set when `data` was too large for a queue
     * message and `data.result.text` was left out; GET this path for the full record.
     */
    dataref: z.string().optional(),
    data,
  });
}
