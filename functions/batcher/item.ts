import type { SQSRecord } from "aws-lambda";
import type { ChatMessage, InferenceRequest, Result } from "../../events/index.ts";
import { attemptNumber } from "../shared/sqs-records.ts";
import type { Tenant } from "../shared/stores/tenants.ts";
import type { Span } from "../shared/tracing.ts";

/** One request ready for the model. */
export interface Item {
  record: SQSRecord;
  request: InferenceRequest;
  tenant: Tenant | undefined;
  /** The request's span in this function (tracing on), ended when its outcome is known. */
  span?: Span | undefined;
}

/** What a request is answered with, whoever answers it. */
export type Answer = Pick<Result, "text" | "finish_reason" | "usage">;

/** A plain prompt (no conversation context): it may share a `/v1/completions` prompt array. */
export function isPlainPrompt(request: InferenceRequest): boolean {
  return request.prompt !== undefined && request.context === undefined;
}

/** The messages a chat call sends: the assembled context, else the request's own. */
export function chatMessages(request: InferenceRequest): ChatMessage[] {
  return request.context ?? request.messages ?? [{ role: "user", content: request.prompt ?? "" }];
}

/** The prompt as the model saw it: what the last-answer key of the degradation ladder is built from. */
export function promptOf(request: InferenceRequest): { prompt?: string; messages?: ChatMessage[] } {
  if (isPlainPrompt(request)) return { prompt: request.prompt ?? "" };
  return { messages: chatMessages(request) };
}

/**
 * Whether the request's caller gets its answer streamed: asked for (`reply.stream`), and a first
 * attempt — a redelivered request may have shown text in an attempt that died, so it is answered whole.
 */
export function streams(item: Pick<Item, "request" | "record">): boolean {
  return item.request.reply?.stream === true && attemptNumber(item.record) === 1;
}

/** Only the answer's fields (a cached answer or a model's result carries more). */
export function pickAnswer(answer: Answer): Answer {
  return { text: answer.text, finish_reason: answer.finish_reason, usage: pickUsage(answer.usage) };
}

export function pickUsage(usage: { prompt_tokens: number; completion_tokens: number }): Answer["usage"] {
  return { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens };
}
