import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";

/** The OpenAI-compatible chat and completion routes' tunables, each with its default. */
export const OPENAI_ROUTES_DEFAULTS = {
  /**
   * `deadline_seconds` of a request made through `/v1/chat/completions` or `/v1/completions`: past
   * it the batcher degrades the answer (fallback model, static reply) or fails it, as for any
   * request. A caller is waiting on the line, so it is much shorter than the API's 900.
   */
  deadlineSeconds: 120,
  /** How long past the deadline a waiting caller still waits for the answer before it reads the record once. */
  graceMs: 10_000,
  /**
   * A non-streamed answer is given this long before the HTTP request's own time runs out
   * (`context.getRemainingTimeInMillis()`): then the record is read once, and when it is not
   * finished the caller gets a 504 naming the request id to poll.
   */
  responseMarginMs: 1_000,
  /**
   * A stream with nothing to say (the request is still queued) sends an SSE comment this often, so
   * that proxies and load balancers with an idle timeout keep the connection open.
   */
  keepAliveMs: 15_000,
  /** `max_tokens` of a text completion that names none (OpenAI's and vLLM's default for /v1/completions). */
  completionMaxTokens: 16,
  /** The `created` of the models `GET /v1/models` lists (epoch seconds; constant, the models are configuration). */
  modelsCreated: 1_735_689_600,
  /** `owned_by` of the listed models. */
  ownedBy: "deepqueue",
} as const;

/** The reply queue's tunables (functions/openai/reply-queue.ts). */
export const REPLY_QUEUE_DEFAULTS = {
  /**
   * Retention of a reply queue's messages, in seconds (SQS's minimum is 60): a reply nobody
   * received by then is of no use to anyone.
   */
  retentionSeconds: 300,
  /** How often a replica refreshes its queue's heartbeat tag. */
  heartbeatMs: 60_000,
  /** Long-poll wait of each receive (SQS's maximum). */
  waitTimeSeconds: 20,
  /** After a failed receive, wait this long before the next (doubling up to 20 s). */
  retryBaseMs: 500,
  /** Replies for a request id no caller is waiting for yet (a cache hit can beat the 202) are kept this long. */
  earlyReplyTtlMs: 30_000,
  /** Most such early replies kept. */
  earlyReplyMax: 10_000,
} as const;

/** The tag holding a reply queue's heartbeat (epoch seconds); the reconciler removes queues whose tag is stale. */
export const REPLY_HEARTBEAT_TAG = "deepqueue:heartbeat";

/** @example replyQueueName("deepqueue", "ingest-7f9c") // "deepqueue-reply-ingest-7f9c" */
export function replyQueueName(prefix: string, replicaId: string): string {
  return `${prefix}-reply-${replicaId}`;
}

/** Variables of the OpenAI-compatible routes, read by ingest (docs/api.md#configuration). */
export const openAiEnvSchema = baseEnvSchema.extend({
  /** `deadline_seconds` of chat and text completions (see OPENAI_ROUTES_DEFAULTS.deadlineSeconds). */
  DEEPQUEUE_CHAT_DEADLINE_SECONDS: z.coerce
    .number()
    .int()
    .min(10)
    .max(86_400)
    .default(OPENAI_ROUTES_DEFAULTS.deadlineSeconds),
});

/** What the routes are built with: the models a tenant may name, and the chat deadline. */
export interface OpenAiRoutesSettings {
  /** The configured model (DEEPQUEUE_MODEL), the default of a request. */
  model: string;
  /** The fallback model (DEEPQUEUE_FALLBACK_MODEL), when one is configured. */
  fallbackModel?: string;
  /** @default OPENAI_ROUTES_DEFAULTS.deadlineSeconds */
  deadlineSeconds?: number;
}

/**
 * How long the HTTP request of a chat or text completion may last: the caller waits on the line
 * for its answer, up to the completion's deadline plus the grace, and a little more for the answer
 * to be written. Routes that answer at once keep the adapter's default.
 *
 * @example completionRequestTimeoutMs({ model: "deepseek-chat" }) // 135000
 */
export function completionRequestTimeoutMs(settings: OpenAiRoutesSettings | undefined): number {
  const deadlineSeconds = settings?.deadlineSeconds ?? OPENAI_ROUTES_DEFAULTS.deadlineSeconds;
  return deadlineSeconds * 1000 + OPENAI_ROUTES_DEFAULTS.graceMs + COMPLETION_WRITE_MARGIN_MS;
}

/** Time left, past a completion's deadline and grace, to write its answer. */
const COMPLETION_WRITE_MARGIN_MS = 5_000;

/** The routes whose caller waits for the answer (their HTTP request lasts up to the chat deadline). */
export const COMPLETION_PATHS: readonly string[] = ["/v1/chat/completions", "/v1/completions"];

/** @example const settings = openAiSettingsFromEnv(process.env); */
export function openAiSettingsFromEnv(
  source: Record<string, string | undefined> = process.env,
): OpenAiRoutesSettings {
  const env = loadEnv(openAiEnvSchema, source);
  return {
    model: env.DEEPQUEUE_MODEL,
    ...(env.DEEPQUEUE_FALLBACK_MODEL ? { fallbackModel: env.DEEPQUEUE_FALLBACK_MODEL } : {}),
    deadlineSeconds: env.DEEPQUEUE_CHAT_DEADLINE_SECONDS,
  };
}
