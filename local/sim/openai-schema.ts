import { z } from "zod";

/**
 * The request bodies the simulator accepts, as vLLM's OpenAI server does
 * (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html).
 * Unknown fields are ignored, as vLLM ignores them; sampling fields the
 * simulator does not model (top_p, stop, penalties…) are accepted and ignored.
 */
const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  seed: z.number().int().nullish(),
  n: z.literal(1).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
};

export const completionRequestSchema = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
});
export type CompletionRequestBody = z.infer<typeof completionRequestSchema>;

const contentPart = z.object({ type: z.string(), text: z.string().optional() });

export const chatRequestSchema = z.object({
  ...sampling,
  messages: z
    .array(
      z.object({
        role: z.enum(["system", "developer", "user", "assistant", "tool"]),
        content: z.union([z.string(), z.array(contentPart), z.null()]),
      }),
    )
    .min(1),
});
export type ChatRequestBody = z.infer<typeof chatRequestSchema>;

/** vLLM's error body (≥ 0.10): `{"error": {"message", "type", "param", "code"}}`. */
export function errorBody(status: number, type: string, message: string, param: string | null = null) {
  return { error: { message, type, param, code: status } };
}

/** vLLM's message when prompt + max_tokens exceed --max-model-len. */
export function contextLengthMessage(maxModelLen: number, promptTokens: number, maxTokens: number): string {
  return (
    `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
    `${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). ` +
    "Please reduce the length of the messages or completion."
  );
}
