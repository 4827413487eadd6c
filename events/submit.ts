import { z } from "zod";
import { chatMessageSchema, LIMITS, metadataSchema } from "./common.ts";

/**
 * The body of `POST /v1/requests` (docs/api.md#post-v1requests). Unknown fields are refused, so a
 * typo (`max_token`) fails loudly instead of silently using a default.
 * `model` has no default here: it comes from configuration (`DEEPQUEUE_MODEL`).
 */
export const submitBodySchema = z
  .object({
    prompt: z
      .string()
      .min(1, "must not be empty")
      .optional()
      .describe("A one-shot prompt; exactly one of prompt or messages."),
    messages: z
      .array(chatMessageSchema)
      .min(1, "must hold at least one message")
      .max(LIMITS.messages)
      .optional()
      .describe("Chat messages; exactly one of prompt or messages."),
    model: z
      .string()
      .min(1)
      .max(LIMITS.modelNameLength)
      .optional()
      .describe("The model as the model server names it; default DEEPQUEUE_MODEL (deepseek-chat)."),
    max_tokens: z
      .number()
      .int()
      .min(1)
      .max(LIMITS.maxTokens)
      .default(LIMITS.defaultMaxTokens)
      .describe("Most tokens the answer may have; counts against the token quota with the prompt."),
    temperature: z
      .number()
      .min(0)
      .max(LIMITS.maxTemperature)
      .default(LIMITS.defaultTemperature)
      .describe("Sampling temperature; 0 makes the answer cacheable."),
    conversation_id: z
      .string()
      .min(1)
      .max(LIMITS.conversationIdLength)
      .regex(/^[A-Za-z0-9._:-]+$/, "may hold only letters, digits and . _ : -")
      .optional()
      .describe("Continue this stored conversation (made on first use)."),
    // Scheme and address are checked by ingest (`invalid_callback_url`), not here.
    callback_url: z
      .url()
      .max(LIMITS.callbackUrlLength)
      .optional()
      .describe("Also POST the signed result event here (https, public address)."),
    cache: z
      .boolean()
      .default(true)
      .describe("Allow a cached answer (used when temperature is 0, or the tenant opts in)."),
    deadline_seconds: z
      .number()
      .int()
      .min(LIMITS.deadlineSeconds.min)
      .max(LIMITS.deadlineSeconds.max)
      .default(LIMITS.deadlineSeconds.default)
      .describe("Seconds until the request degrades or fails with deadline_exceeded."),
    metadata: metadataSchema
      .optional()
      .describe("Any JSON object of at most 4 KiB, echoed back in the result."),
  })
  .strict()
  .superRefine((body, ctx) => {
    const count = Number(body.prompt !== undefined) + Number(body.messages !== undefined);
    if (count !== 1) {
      ctx.addIssue({
        code: "custom",
        path: [body.prompt === undefined ? "prompt" : "messages"],
        message: "exactly one of prompt or messages is required",
      });
    }
  });

/** What a producer sends (defaults optional). */
export type SubmitBodyInput = z.input<typeof submitBodySchema>;
/** What ingest works with (defaults filled). */
export type SubmitBody = z.output<typeof submitBodySchema>;

/** The `202 Accepted` response. */
export const acceptedResponseSchema = z.object({
  id: z.string(),
  status: z.literal("queued"),
  status_url: z.string(),
});
export type AcceptedResponse = z.infer<typeof acceptedResponseSchema>;
