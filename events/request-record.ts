import { z } from "zod";
import { isoTime, metadataSchema, REQUEST_STATUSES, RESULT_SOURCES } from "./common.ts";

export const usageSchema = z.object({
  prompt_tokens: z.number().int().min(0),
  completion_tokens: z.number().int().min(0),
});
export type Usage = z.infer<typeof usageSchema>;

/** Usage as an OpenAI-compatible model server reports it (DeepSeek adds its context-cache counts). */
export const modelUsageSchema = usageSchema.extend({
  total_tokens: z.number().int().min(0),
  prompt_cache_hit_tokens: z.number().int().min(0).optional(),
  prompt_cache_miss_tokens: z.number().int().min(0).optional(),
});
export type ModelUsage = z.infer<typeof modelUsageSchema>;

export const resultSchema = z.object({
  text: z.string(),
  finish_reason: z.string(),
  usage: usageSchema,
  source: z
    .enum(RESULT_SOURCES)
    .describe("Who answered: the model, the cache, the fallback model, or the static reply."),
});
export type Result = z.infer<typeof resultSchema>;

export const errorDetailSchema = z.object({
  code: z
    .string()
    .describe("Machine-readable: an API error code, or why a request failed (docs/api.md#errors)."),
  message: z.string(),
});
export type ErrorDetail = z.infer<typeof errorDetailSchema>;

/** The API's error body (docs/api.md#errors): `{"error": {"code", "message"}}`. */
export const errorBodySchema = z.object({ error: errorDetailSchema });
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** Where webhook delivery stands: a failure is visible in the record. */
export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;
export const deliveryStateSchema = z.object({
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number().int().min(0),
  last_attempt_at: isoTime.optional(),
  last_error: z.string().optional(),
});
export type DeliveryState = z.infer<typeof deliveryStateSchema>;

/**
 * `GET /v1/requests/{id}`, and the `data` of every result event (docs/api.md#get-v1requestsid).
 */
export const requestRecordSchema = z.object({
  id: z.string(),
  status: z.enum(REQUEST_STATUSES).describe("queued → processing → completed or failed."),
  model: z.string(),
  created_at: isoTime,
  completed_at: isoTime.optional(),
  result: resultSchema.optional(),
  error: errorDetailSchema.optional(),
  conversation_id: z.string().optional(),
  metadata: metadataSchema.optional(),
  /** Present when the request had a `callback_url`. */
  delivery: deliveryStateSchema.optional(),
});
export type RequestRecord = z.infer<typeof requestRecordSchema>;
