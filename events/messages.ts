import { z } from "zod";
import { cloudEventSchema, EVENT_TYPES } from "./cloudevent.ts";
import { chatMessageSchema, isoTime, metadataSchema } from "./common.ts";
import { requestRecordSchema } from "./request-record.ts";

/**
 * An accepted request as it travels the pipeline: everything a worker needs
 * without reading the request record again. Written by ingest.
 */
export const acceptedRequestSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  model: z.string(),
  prompt: z.string().optional(),
  messages: z.array(chatMessageSchema).optional(),
  max_tokens: z.number().int().min(1),
  temperature: z.number().min(0),
  cache: z.boolean(),
  conversation_id: z.string().optional(),
  callback_url: z.string().optional(),
  metadata: metadataSchema.optional(),
  /** Tokens of the prompt (or messages) alone, counted at ingest with the DeepSeek tokenizer. */
  prompt_tokens: z.number().int().min(0),
  created_at: isoTime,
  /** When no answer is ready by then, degrade or fail with `deadline_exceeded`. */
  deadline_at: isoTime,
  /**
   * Which inference queue serves it: `interactive` (`<prefix>-inference`, the default when absent)
   * or `batch` (`<prefix>-inference-batch`, served only after interactive work).
   */
  lane: z.enum(["interactive", "batch"]).optional(),
  /** A line of a batch (POST /v1/batches): the batch, the line's custom_id, its 0-based line number. */
  batch: z.object({ id: z.string(), custom_id: z.string(), line: z.number().int().min(0) }).optional(),
  /**
   * A caller is waiting on an ingest replica (the OpenAI-compatible routes): the replica's reply
   * queue. With `stream`, answer tokens are forwarded there as they come (reply messages below).
   */
  reply: z.object({ queue_url: z.string(), stream: z.boolean() }).optional(),
});
export type AcceptedRequest = z.infer<typeof acceptedRequestSchema>;

/** On `<prefix>-requests`: ingest → cache. */
export const requestAcceptedEventSchema = cloudEventSchema(
  z.literal(EVENT_TYPES.requestAccepted),
  acceptedRequestSchema,
);
export type RequestAcceptedEvent = z.infer<typeof requestAcceptedEventSchema>;

/** On `<prefix>-inference`: cache → batcher, a cache miss with its assembled context. */
export const inferenceRequestSchema = acceptedRequestSchema.extend({
  /** The normalized cache key; absent when the request may not use the cache. */
  cache_key: z.string().optional(),
  /** Chat messages after conversation context assembly (history + summary + this turn). */
  context: z.array(chatMessageSchema).optional(),
});
export type InferenceRequest = z.infer<typeof inferenceRequestSchema>;
export const inferenceRequestedEventSchema = cloudEventSchema(
  z.literal(EVENT_TYPES.inferenceRequested),
  inferenceRequestSchema,
);
export type InferenceRequestedEvent = z.infer<typeof inferenceRequestedEventSchema>;

/** On tenant result queues and callbacks (docs/api.md#events): `data` is the request record. */
export const resultEventSchema = cloudEventSchema(
  z.enum([EVENT_TYPES.requestCompleted, EVENT_TYPES.requestFailed]),
  requestRecordSchema,
);
export type ResultEvent = z.infer<typeof resultEventSchema>;

/** On `<prefix>-delivery`: a result event and where it goes. */
export const deliveryRequestSchema = z.object({
  tenant: z.string(),
  callback_url: z.string().optional(),
  event: resultEventSchema,
});
export type DeliveryRequest = z.infer<typeof deliveryRequestSchema>;
export const deliveryRequestedEventSchema = cloudEventSchema(
  z.literal(EVENT_TYPES.deliveryRequested),
  deliveryRequestSchema,
);
export type DeliveryRequestedEvent = z.infer<typeof deliveryRequestedEventSchema>;

/**
 * On an ingest replica's reply queue (request/reply for a waiting caller): `delta`s carry answer
 * text as the model produces it (coalesced, about every 100 ms; `seq` counts from 0 per request),
 * `done` carries the final request record, the same as a result event's data, once the request is
 * completed or failed (also for cache hits, fallbacks and failures, with no deltas before it).
 */
export const replyMessageSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("delta"),
    request_id: z.string(),
    seq: z.number().int().min(0),
    text: z.string(),
  }),
  z.object({
    type: z.literal("done"),
    request_id: z.string(),
    record: requestRecordSchema,
    /**
     * Claim check: set when the record was too large for a message. `record.result.text` is then
     * empty; read the full record from the request store (`GET` this path).
     */
    dataref: z.string().optional(),
  }),
]);
export type ReplyMessage = z.infer<typeof replyMessageSchema>;
