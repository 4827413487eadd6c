import type { InferenceRequest } from "../../events/index.ts";
import type {
  CallOptions,
  ChatStreamDelta,
  FinishReason,
  InferenceClient,
  Usage,
} from "../shared/inference-client.ts";
import { StreamInterruptedError } from "../shared/inference-errors.ts";
import { histogram } from "../shared/metrics.ts";
import type { ResultPublisher } from "../shared/results.ts";
import { countTokens } from "../shared/tokenizer.ts";
import { endModelSpan, endSpan, type ModelCall, spanTraceparent, startModelSpan } from "../shared/tracing.ts";
import { type Answer, chatMessages, type Item, isPlainPrompt, pickUsage } from "./item.ts";
import { ReplyStream } from "./reply-stream.ts";
import { Semaphore } from "./semaphore.ts";

const metrics = {
  batchSize: histogram(
    "deepqueue_batch_size",
    "Requests per model call (a completions prompt array, or 1 for chat)",
    ["endpoint"],
    [1, 2, 3, 4, 5, 6, 8, 10, 16, 32, 64],
  ),
  modelLatency: histogram("deepqueue_model_latency_seconds", "Model call latency", [
    "model",
    "endpoint",
    "outcome",
  ]),
};

export interface ModelCallsOptions {
  /** Built with retries: 0 — transient failures retry through the queue, never by sleeping here. */
  inference: InferenceClient;
  /** The fallback model's client (its own circuit breaker); defaults to `inference`. */
  fallbackInference?: InferenceClient | undefined;
  /** Requests in flight to the model server at once (K): a prompt array of n takes n. */
  maxInFlight: number;
  /** Where a streamed answer's deltas go (the caller's reply queue). */
  replies: Pick<ResultPublisher, "reply">;
  /** At most one delta message per request this often. */
  replyIntervalMs: number;
}

/** What a model call returns, as its span records it. */
interface ModelOutput {
  id: string;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number };
}

type Served = Pick<Item, "request" | "span">;

/**
 * The batcher's model calls: a prompt array, a chat call, a streamed answer. Each holds slots of
 * the K in flight, records its latency and batch size, and has its own span (tracing on).
 *
 * @example const calls = new ModelCalls({ inference, maxInFlight: 96, replies, replyIntervalMs: 100 }); const [a] = await calls.completions([item], "deepseek-chat");
 */
export class ModelCalls {
  readonly #slots: Semaphore;

  constructor(private readonly options: ModelCallsOptions) {
    this.#slots = new Semaphore(options.maxInFlight);
  }

  async chat(item: Served, model: string, client = this.options.inference): Promise<Answer> {
    const { request } = item;
    const out = await this.#call(
      describe("chat", model, client, [item]),
      (options) => client.chat({ ...sampling(request, model), messages: chatMessages(request) }, options),
      (value) => [value.finish_reason],
    );
    return { text: out.text, finish_reason: out.finish_reason, usage: pickUsage(out.usage) };
  }

  /** One completions call for every prompt; one answer per prompt, in order. */
  async completions(items: Served[], model: string, client = this.options.inference): Promise<Answer[]> {
    const batch = items.map((i) => i.request);
    const first = batch[0]!;
    const out = await this.#call(
      describe("text_completion", model, client, items),
      (options) =>
        client.completions({ ...sampling(first, model), prompt: batch.map((r) => r.prompt ?? "") }, options),
      (value) => value.choices.map((c) => c.finish_reason),
    );
    return out.choices.map((choice, i) => ({
      text: choice.text,
      finish_reason: choice.finish_reason,
      // The server reports totals per call; per prompt, its tokens as ingest counted them (as vLLM
      // does: BOS + prompt, same tokenizer) and the answer's tokens: max_tokens when it was cut
      // there (what the server generated, no count needed), else counted.
      usage:
        batch.length === 1
          ? pickUsage(out.usage)
          : {
              prompt_tokens: batch[i]!.prompt_tokens,
              completion_tokens:
                choice.finish_reason === "length" ? batch[i]!.max_tokens : countTokens(choice.text),
            },
    }));
  }

  /** The fallback model's answer (degradation level 2), on the fallback's own client. */
  async fallback(item: Served, model: string): Promise<Answer> {
    const client = this.options.fallbackInference ?? this.options.inference;
    if (isPlainPrompt(item.request)) return (await this.completions([item], model, client))[0]!;
    return this.chat(item, model, client);
  }

  /**
   * One streaming call for a request whose caller waits with `reply.stream`: the text goes to the
   * reply queue as it comes (ReplyStream). A failure after the first delta is a
   * StreamInterruptedError: the caller has seen part of the answer.
   */
  async stream(item: Served): Promise<Answer> {
    const { request } = item;
    const client = this.options.inference;
    const queueUrl = request.reply!.queue_url;
    const reply = new ReplyStream(
      request.id,
      (delta) => this.options.replies.reply(queueUrl, delta),
      this.options.replyIntervalMs,
    );
    const operation = isPlainPrompt(request) ? "text_completion" : "chat";
    try {
      const out = await this.#call(
        describe(operation, request.model, client, [item]),
        (options) => collect(request, openStream(client, request, options), reply),
        (value) => [value.finish_reason],
      );
      await reply.close();
      return { text: out.text, finish_reason: out.finish_reason, usage: pickUsage(out.usage) };
    } catch (error) {
      reply.abandon();
      if (reply.sent > 0) throw new StreamInterruptedError({ cause: error });
      throw error;
    }
  }

  async #call<T extends ModelOutput>(
    call: ModelCall,
    fn: (options: CallOptions | undefined) => Promise<T>,
    finishReasons: (value: T) => string[],
  ): Promise<T> {
    const endpoint = call.operation === "chat" ? "chat" : "completions";
    const size = call.served.length;
    const release = await this.#slots.acquire(size);
    const started = performance.now();
    const span = startModelSpan(call);
    let outcome = "error";
    try {
      // The model server gets the model span's context (a traced vLLM continues the trace).
      const value = await fn(span ? { traceparent: spanTraceparent(span) } : undefined);
      outcome = "ok";
      endModelSpan(span, {
        id: value.id,
        model: value.model,
        finishReasons: finishReasons(value),
        inputTokens: value.usage.prompt_tokens,
        outputTokens: value.usage.completion_tokens,
      });
      return value;
    } catch (error) {
      endSpan(span, error);
      throw error;
    } finally {
      release();
      const seconds = (performance.now() - started) / 1000;
      metrics.modelLatency.observe({ model: call.model, endpoint, outcome }, seconds);
      metrics.batchSize.observe({ endpoint }, size);
    }
  }
}

function sampling(request: InferenceRequest, model: string) {
  return { model, max_tokens: request.max_tokens, temperature: request.temperature };
}

function describe(
  operation: ModelCall["operation"],
  model: string,
  client: InferenceClient,
  items: Served[],
): ModelCall {
  const first = items[0]!.request;
  return {
    operation,
    model,
    baseUrl: client.baseUrl,
    maxTokens: first.max_tokens,
    temperature: first.temperature,
    served: items.map((i) => i.span),
  };
}

function openStream(client: InferenceClient, request: InferenceRequest, options: CallOptions | undefined) {
  const params = sampling(request, request.model);
  return isPlainPrompt(request)
    ? client.completionsStream({ ...params, prompt: request.prompt ?? "" }, options)
    : client.chatStream({ ...params, messages: chatMessages(request) }, options);
}

/** Reads a stream to its end, pushing its text to `reply`; the whole answer. */
async function collect(
  request: InferenceRequest,
  deltas: AsyncIterable<ChatStreamDelta>,
  reply: ReplyStream,
): Promise<ModelOutput & { text: string; finish_reason: FinishReason }> {
  let text = "";
  let last: ChatStreamDelta | undefined;
  for await (const delta of deltas) {
    text += delta.content;
    reply.push(delta.content);
    last = delta;
  }
  // Without the server's usage (no include_usage support): the tokens as ingest and the tokenizer count them.
  const usage: Pick<Usage, "prompt_tokens" | "completion_tokens"> = last?.usage ?? {
    prompt_tokens: request.prompt_tokens,
    completion_tokens: countTokens(text),
  };
  return { id: "", model: request.model, text, finish_reason: last?.finish_reason ?? "stop", usage };
}
