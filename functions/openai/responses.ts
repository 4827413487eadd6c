import type { RequestRecord } from "../../events/index.ts";

/**
 * OpenAI's response shapes built from a request record: `chat.completion` and `text_completion`
 * objects, and the server-sent events of a stream (`chat.completion.chunk` / text completion
 * chunks, ending with `data: [DONE]`), as https://platform.openai.com/docs/api-reference/chat
 * documents them. The `id` is the request id, so `GET /v1/requests/{id}` reads the same request.
 */

/** Which route answers: chat (`/v1/chat/completions`) or text (`/v1/completions`). */
export type CompletionKind = "chat" | "text";

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** What every chunk and completion names: the request, its model, when it was made. */
export interface CompletionHead {
  id: string;
  model: string;
  /** Epoch seconds. */
  created: number;
}

export function usageOf(record: RequestRecord): OpenAiUsage {
  const usage = record.result?.usage ?? { prompt_tokens: 0, completion_tokens: 0 };
  return { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
}

export function headOf(record: RequestRecord): CompletionHead {
  return { id: record.id, model: record.model, created: Math.floor(Date.parse(record.created_at) / 1000) };
}

/**
 * The non-streamed answer of a completed record.
 *
 * @example completionBody("chat", record) // { id, object: "chat.completion", choices: [{ message: { role, content } }], usage }
 */
export function completionBody(kind: CompletionKind, record: RequestRecord) {
  const text = record.result?.text ?? "";
  const finish_reason = record.result?.finish_reason ?? "stop";
  const head = headOf(record);
  const usage = usageOf(record);
  if (kind === "chat") {
    return {
      ...head,
      object: "chat.completion",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: text, refusal: null },
          logprobs: null,
          finish_reason,
        },
      ],
      usage,
    };
  }
  return {
    ...head,
    object: "text_completion",
    choices: [{ index: 0, text, logprobs: null, finish_reason }],
    usage,
  };
}

/** One server-sent event: `data: <json>` and a blank line. */
export function sseData(data: unknown): string {
  return `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}

/** The stream's end: `data: [DONE]`. */
export const SSE_DONE = sseData("[DONE]");

/**
 * The chunks of one streamed answer, in order: `start()` (chat: the assistant role), `delta(text)`
 * per piece of text, `finish(record)` (the rest of the text when the deltas so far are a prefix of
 * the final text, else nothing more; then the finish reason, the usage when asked, `[DONE]`).
 *
 * @example
 * const chunks = new StreamChunks("chat", head, { includeUsage: true });
 * res.write(chunks.start()); res.write(chunks.delta("Hel")); res.write(chunks.finish(record));
 */
export class StreamChunks {
  #sent = "";
  readonly #head: CompletionHead;
  readonly #kind: CompletionKind;
  readonly #includeUsage: boolean;

  constructor(kind: CompletionKind, head: CompletionHead, options: { includeUsage: boolean }) {
    this.#kind = kind;
    this.#head = head;
    this.#includeUsage = options.includeUsage;
  }

  /** Text sent so far. */
  get sent(): string {
    return this.#sent;
  }

  /** The first chunk of a chat stream (the assistant role, no text); nothing for text completions. */
  start(): string {
    return this.#kind === "chat" ? sseData(this.#chunk({ role: "assistant", content: "" }, null)) : "";
  }

  delta(text: string): string {
    if (text === "") return "";
    this.#sent += text;
    return sseData(this.#chunk(this.#kind === "chat" ? { content: text } : text, null));
  }

  /**
   * Whether the text sent so far is not the start of `record`'s final text: an attempt that
   * streamed died and the request was answered again, whole (the batcher streams first attempts only).
   */
  contradicts(record: RequestRecord): boolean {
    return !(record.result?.text ?? "").startsWith(this.#sent);
  }

  /**
   * The end of a completed request: the text not yet sent (all of it for a cache hit or a fallback
   * answer, which arrive whole), the finish reason, the usage, `[DONE]`. Call it only when the
   * record does not `contradict` what was sent.
   */
  finish(record: RequestRecord): string {
    const final = record.result?.text ?? "";
    const rest = final.slice(this.#sent.length);
    const finishReason = record.result?.finish_reason ?? "stop";
    let out = this.delta(rest);
    out += sseData(this.#chunk(this.#kind === "chat" ? {} : "", finishReason));
    if (this.#includeUsage) out += sseData(this.#usageChunk(usageOf(record)));
    return out + SSE_DONE;
  }

  #chunk(delta: Record<string, string> | string, finishReason: string | null) {
    const usage = this.#includeUsage ? { usage: null } : {};
    if (this.#kind === "chat") {
      return {
        ...this.#head,
        object: "chat.completion.chunk",
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
        ...usage,
      };
    }
    return {
      ...this.#head,
      object: "text_completion",
      choices: [{ index: 0, text: delta, logprobs: null, finish_reason: finishReason }],
      ...usage,
    };
  }

  /** `stream_options.include_usage`'s last chunk: no choices, the usage. */
  #usageChunk(usage: OpenAiUsage) {
    return {
      ...this.#head,
      object: this.#kind === "chat" ? "chat.completion.chunk" : "text_completion",
      choices: [],
      usage,
    };
  }
}
