import { z } from "zod";
import { cloudEventSchema, EVENT_TYPES } from "./cloudevent.ts";

/**
 * The Batch API's shapes, as OpenAI documents them (https://platform.openai.com/docs/api-reference/batch):
 * the official `openai` client reads these objects unchanged. Times are epoch seconds, as OpenAI's.
 */

/** Endpoints a batch may target: the two the pipeline serves. */
export const BATCH_ENDPOINTS = ["/v1/chat/completions", "/v1/completions"] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

export const BATCH_STATUSES = [
  "validating",
  "failed",
  "in_progress",
  "finalizing",
  "completed",
  "expired",
  "cancelling",
  "cancelled",
] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** `file` objects (`POST /v1/files`, `GET /v1/files/{id}`). */
export const fileObjectSchema = z.object({
  id: z.string(),
  object: z.literal("file"),
  bytes: z.number().int().min(0),
  created_at: z.number().int(),
  filename: z.string(),
  purpose: z.enum(["batch", "batch_output"]),
  status: z.enum(["uploaded", "processed", "error"]),
  expires_at: z.number().int().optional(),
});
export type FileObject = z.infer<typeof fileObjectSchema>;

/** One problem of an input file: what it is and the 1-based line it is on. */
export const batchErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  param: z.string().nullable(),
  line: z.number().int().nullable(),
});
export type BatchError = z.infer<typeof batchErrorSchema>;

export const requestCountsSchema = z.object({
  total: z.number().int().min(0),
  completed: z.number().int().min(0),
  failed: z.number().int().min(0),
});
export type RequestCounts = z.infer<typeof requestCountsSchema>;

/**
 * A batch's tokens (OpenAI's `BatchUsage`): its lines' usage summed when the batch ends. The
 * model reports no reasoning tokens apart, so `reasoning_tokens` is 0.
 */
export const batchUsageSchema = z.object({
  input_tokens: z.number().int().min(0),
  input_tokens_details: z.object({ cached_tokens: z.number().int().min(0) }),
  output_tokens: z.number().int().min(0),
  output_tokens_details: z.object({ reasoning_tokens: z.number().int().min(0) }),
  total_tokens: z.number().int().min(0),
});
export type BatchUsage = z.infer<typeof batchUsageSchema>;

/** `batch` objects (`POST /v1/batches`, `GET /v1/batches/{id}`), also the data of batch events. */
export const batchObjectSchema = z.object({
  id: z.string(),
  object: z.literal("batch"),
  endpoint: z.enum(BATCH_ENDPOINTS),
  errors: z.object({ object: z.literal("list"), data: z.array(batchErrorSchema) }).nullable(),
  input_file_id: z.string(),
  completion_window: z.literal("24h"),
  status: z.enum(BATCH_STATUSES),
  output_file_id: z.string().nullable(),
  error_file_id: z.string().nullable(),
  created_at: z.number().int(),
  in_progress_at: z.number().int().nullable(),
  expires_at: z.number().int().nullable(),
  finalizing_at: z.number().int().nullable(),
  completed_at: z.number().int().nullable(),
  failed_at: z.number().int().nullable(),
  expired_at: z.number().int().nullable(),
  cancelling_at: z.number().int().nullable(),
  cancelled_at: z.number().int().nullable(),
  request_counts: requestCountsSchema,
  metadata: z.record(z.string(), z.string()).nullable(),
  /** The model the lines named (the first line's, or the default), once a line has run. */
  model: z.string().optional(),
  /** Absent until the batch ends (completed, expired or cancelled), as OpenAI omits it. */
  usage: batchUsageSchema.optional(),
});
export type BatchObject = z.infer<typeof batchObjectSchema>;

/** OpenAI's bounds of `output_expires_after.seconds`: one hour to 30 days. */
export const OUTPUT_EXPIRES_AFTER_SECONDS = { min: 3600, max: 2_592_000 } as const;

/**
 * When a batch's output and error files expire: `seconds` after each file's own `created_at`
 * (the only anchor OpenAI offers), instead of the default 30 days.
 */
export const outputExpiresAfterSchema = z
  .object({
    anchor: z.literal("created_at"),
    seconds: z.number().int().min(OUTPUT_EXPIRES_AFTER_SECONDS.min).max(OUTPUT_EXPIRES_AFTER_SECONDS.max),
  })
  .strict();
export type OutputExpiresAfter = z.infer<typeof outputExpiresAfterSchema>;

/** `POST /v1/batches`'s body. */
export const batchCreateBodySchema = z
  .object({
    input_file_id: z.string().min(1),
    endpoint: z.enum(BATCH_ENDPOINTS),
    completion_window: z.literal("24h"),
    /** OpenAI's limits: at most 16 pairs, keys up to 64 and values up to 512 characters. */
    metadata: z
      .record(z.string().max(64), z.string().max(512))
      .refine((m) => Object.keys(m).length <= 16, { message: "at most 16 keys" })
      .nullable()
      .optional(),
    output_expires_after: outputExpiresAfterSchema.optional(),
  })
  .strict();
export type BatchCreateBody = z.infer<typeof batchCreateBodySchema>;

/** One line of a batch input file. */
export const batchInputLineSchema = z
  .object({
    custom_id: z.string().min(1).max(512),
    method: z.literal("POST"),
    url: z.enum(BATCH_ENDPOINTS),
    body: z.record(z.string(), z.unknown()),
  })
  .strict();
export type BatchInputLine = z.infer<typeof batchInputLineSchema>;

/** One line of a batch's output or error file. */
export const batchOutputLineSchema = z.object({
  id: z.string(),
  custom_id: z.string(),
  response: z.object({ status_code: z.number().int(), request_id: z.string(), body: z.unknown() }).nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type BatchOutputLine = z.infer<typeof batchOutputLineSchema>;

/**
 * On `<prefix>-batches`, the batch worker's control messages: `advance` (validate a new batch,
 * top its window of lines up, finish it when nothing is left; sent on create and cancel) and
 * `line_finished` (a line's request ended; sent where requests end instead of a result event).
 */
export const batchControlMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("advance"), batch_id: z.string() }),
  z.object({
    type: z.literal("line_finished"),
    batch_id: z.string(),
    request_id: z.string(),
    line: z.number().int().min(0),
    status: z.enum(["completed", "failed"]),
  }),
]);
export type BatchControlMessage = z.infer<typeof batchControlMessageSchema>;

/** On tenant result queues when a batch ends: `data` is the batch object. */
export const batchEventSchema = cloudEventSchema(
  z.enum([
    EVENT_TYPES.batchCompleted,
    EVENT_TYPES.batchFailed,
    EVENT_TYPES.batchExpired,
    EVENT_TYPES.batchCancelled,
  ]),
  batchObjectSchema,
);
export type BatchEvent = z.infer<typeof batchEventSchema>;
