import { z } from "zod";

/** The API's bounds (docs/api.md#post-v1requests), named once. */
export const LIMITS = {
  bodyBytes: 256 * 1024,
  maxTokens: 8192,
  defaultMaxTokens: 512,
  defaultTemperature: 0.7,
  maxTemperature: 2,
  conversationIdLength: 128,
  deadlineSeconds: { min: 10, max: 86_400, default: 900 },
  metadataBytes: 4 * 1024,
  idempotencyKeyLength: 255,
  callbackUrlLength: 2048,
  modelNameLength: 128,
  messages: 512,
} as const;

export const ROLES = ["system", "user", "assistant"] as const;

export const chatMessageSchema = z
  .object({
    role: z.enum(ROLES),
    content: z.string(),
  })
  .strict();
export type ChatMessage = z.infer<typeof chatMessageSchema>;

/**
 * The degradation ladder (docs/api.md#the-flow), in the order it is tried when the model server
 * fails: a cached answer, the fallback model, the static reply. Each is switchable per tenant.
 */
export const DEGRADATION_LEVELS = ["cache", "fallback", "static"] as const;
export type DegradationLevel = (typeof DEGRADATION_LEVELS)[number];

/** Where an answer came from: the model or a degradation level. */
export const RESULT_SOURCES = ["model", ...DEGRADATION_LEVELS] as const;
export type ResultSource = (typeof RESULT_SOURCES)[number];

export const REQUEST_STATUSES = ["queued", "processing", "completed", "failed"] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
export const TERMINAL_STATUSES: readonly RequestStatus[] = ["completed", "failed"];

export const isoTime = z.iso.datetime({ offset: true });

/** `metadata`: any JSON object of at most 4 KiB, echoed back in the result. */
export const metadataSchema = z
  .record(z.string(), z.unknown())
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= LIMITS.metadataBytes, {
    message: `must be at most ${LIMITS.metadataBytes} bytes as JSON`,
  });

/**
 * One line per zod issue, each naming the field: `max_tokens: Too big: expected number to be <=8192`.
 *
 * @example describeIssues(submitBodySchema.safeParse(body).error)
 */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join(".");
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}
