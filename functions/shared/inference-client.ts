import {
  type BulkheadPolicy,
  bulkhead,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  DelegateBackoff,
  handleWhen,
  type IRetryBackoffContext,
  isBrokenCircuitError,
  isTaskCancelledError,
  retry,
  TimeoutStrategy,
  timeout,
  wrap,
} from "cockatiel";
import { EventSourceParserStream } from "eventsource-parser/stream";
import { z } from "zod";
import type { ChatMessage, ModelUsage as Usage } from "../../events/index.ts";
import {
  CircuitOpenError,
  errorFromResponse,
  InferenceError,
  InferenceTimeoutError,
  isRetryableInferenceError,
  ModelUnavailableError,
} from "./inference-errors.ts";

export {
  CircuitOpenError,
  ContextLengthError,
  errorFromResponse,
  InferenceError,
  InferenceTimeoutError,
  InvalidModelRequestError,
  isRetryableInferenceError,
  ModelRateLimitedError,
  ModelUnavailableError,
  parseRetryAfter,
} from "./inference-errors.ts";

/**
 * One client for any OpenAI-compatible model server: vLLM, SGLang, the
 * DeepSeek API, the simulator. Completions (a prompt array is one batch, one
 * choice per prompt, in prompt order), chat completions, and chat streaming.
 *
 * Every call goes through cockatiel policies, outermost first:
 * retry (429, 5xx, network errors, timeouts; exponential backoff with jitter,
 * or the server's Retry-After) → circuit breaker (opens after consecutive
 * 5xx/network/timeout failures, so callers degrade at once instead of
 * waiting) → bulkhead (at most `maxConcurrency` calls in flight) → per-attempt
 * timeout. Permanent errors (the context window, other 4xx) are never retried.
 * Defaults follow the source design: 10 s timeout, 3 retries, backoff factor 1 s.
 */

export const INFERENCE_CLIENT_DEFAULTS = {
  /** Per attempt: until the whole body is read (for a stream: until the headers, then between events). */
  timeoutMs: 10_000,
  /** Retries after the first attempt. */
  retries: 3,
  /** Backoff before retry n is about factor × 2^(n-1) (1 s, 2 s, 4 s), jittered to 50–100 %. */
  backoffFactorMs: 1_000,
  maxBackoffMs: 30_000,
  /** A server's Retry-After is honoured up to this. */
  maxRetryAfterMs: 60_000,
  /** Calls in flight at once; more wait their turn. */
  maxConcurrency: 64,
  /** Consecutive 5xx / network / timeout failures that open the breaker. */
  breakerThreshold: 5,
  /** How long the breaker stays open before one trial call (half-open). */
  breakerHalfOpenAfterMs: 10_000,
} as const;

export interface InferenceClientConfig
  extends Partial<Record<keyof typeof INFERENCE_CLIENT_DEFAULTS, number>> {
  /** OpenAI-compatible base URL (INFERENCE_URL), e.g. `http://127.0.0.1:8000/v1` or `https://api.deepseek.com`. */
  baseUrl: string;
  /** Bearer key (INFERENCE_API_KEY). */
  apiKey?: string | undefined;
  /** Extra headers on every call. */
  headers?: Record<string, string>;
  /** For tests: a fetch, and a random source for the jitter. */
  fetch?: typeof fetch;
  random?: () => number;
  /** Called before each retry (for logs and metrics). */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

// ---------------------------------------------------------------- request / response shapes

export type FinishReason = "stop" | "length" | (string & {});

export type { ChatMessage, Usage };

interface SamplingParams {
  model: string;
  max_tokens?: number | undefined;
  temperature?: number | undefined;
  seed?: number | undefined;
  top_p?: number | undefined;
  stop?: string | string[] | undefined;
  /** Other fields passed through unchanged. */
  extra?: Record<string, unknown>;
}

export interface CompletionRequest extends SamplingParams {
  /** One prompt, or a batch: one choice per prompt comes back, in prompt order. */
  prompt: string | string[];
}

export interface ChatRequest extends SamplingParams {
  messages: ChatMessage[];
}

export interface CompletionChoice {
  index: number;
  text: string;
  finish_reason: FinishReason;
}

export interface CompletionResult {
  id: string;
  model: string;
  /** One per prompt, in prompt order. */
  choices: CompletionChoice[];
  /** Totals over every prompt of the call. */
  usage: Usage;
  system_fingerprint?: string | undefined;
}

export interface ChatResult {
  id: string;
  model: string;
  /** The first choice's message content. */
  text: string;
  finish_reason: FinishReason;
  /** deepseek-reasoner's chain of thought, when the server sends it. */
  reasoning_content?: string | undefined;
  usage: Usage;
  system_fingerprint?: string | undefined;
}

/** One server-sent event of a chat stream; the last carries `finish_reason`, and `usage` when the server sends it. */
export interface ChatStreamDelta {
  index: number;
  content: string;
  finish_reason: FinishReason | null;
  usage?: Usage | undefined;
}

export interface CallOptions {
  /** Cancels the call, its retries and its stream. */
  signal?: AbortSignal;
  /** W3C trace context sent as the `traceparent` header: a traced model server (vLLM `--otlp-traces-endpoint`) continues the trace. */
  traceparent?: string | undefined;
}

export type BreakerState = "closed" | "open" | "half-open" | "isolated";

export interface InferenceClient {
  /** The server's base URL (for span attributes); absent on test doubles. */
  readonly baseUrl?: string;
  completions(request: CompletionRequest, options?: CallOptions): Promise<CompletionResult>;
  chat(request: ChatRequest, options?: CallOptions): Promise<ChatResult>;
  chatStream(request: ChatRequest, options?: CallOptions): AsyncIterable<ChatStreamDelta>;
  /** Model ids the server serves (`GET /models`). */
  models(options?: CallOptions): Promise<string[]>;
  /** "open" means calls fail at once with CircuitOpenError: degrade without waiting. */
  breakerState(): BreakerState;
  onBreakerStateChange(listener: (state: BreakerState) => void): { dispose(): void };
}

const usageSchema = z.object({
  prompt_tokens: z.number().int().min(0),
  completion_tokens: z.number().int().min(0),
  total_tokens: z.number().int().min(0).optional(),
  prompt_cache_hit_tokens: z.number().int().min(0).optional(),
  prompt_cache_miss_tokens: z.number().int().min(0).optional(),
});
const finishReason = z.string().nullish();
const completionSchema = z.object({
  id: z.string(),
  model: z.string(),
  choices: z.array(
    z.object({ index: z.number().int().min(0), text: z.string(), finish_reason: finishReason }),
  ),
  usage: usageSchema.nullish(),
  system_fingerprint: z.string().nullish(),
});
const chatSchema = z.object({
  id: z.string(),
  model: z.string(),
  choices: z
    .array(
      z.object({
        index: z.number().int().min(0),
        message: z.object({
          role: z.string(),
          content: z.string().nullish(),
          reasoning_content: z.string().nullish(),
        }),
        finish_reason: finishReason,
      }),
    )
    .min(1),
  usage: usageSchema.nullish(),
  system_fingerprint: z.string().nullish(),
});
const chatChunkSchema = z.object({
  choices: z.array(
    z.object({
      index: z.number().int().min(0),
      delta: z.object({ content: z.string().nullish(), reasoning_content: z.string().nullish() }).optional(),
      finish_reason: finishReason,
    }),
  ),
  usage: usageSchema.nullish(),
});
const modelsSchema = z.object({ data: z.array(z.object({ id: z.string() })) });

function toUsage(usage: z.infer<typeof usageSchema> | null | undefined): Usage {
  if (!usage) return { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.total_tokens ?? usage.prompt_tokens + usage.completion_tokens,
    ...(usage.prompt_cache_hit_tokens !== undefined
      ? { prompt_cache_hit_tokens: usage.prompt_cache_hit_tokens }
      : {}),
    ...(usage.prompt_cache_miss_tokens !== undefined
      ? { prompt_cache_miss_tokens: usage.prompt_cache_miss_tokens }
      : {}),
  };
}

// ---------------------------------------------------------------- the client

const BREAKER_STATES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half-open",
  [CircuitState.Isolated]: "isolated",
};

/**
 * @example
 * const client = createInferenceClient({ baseUrl: env.INFERENCE_URL, apiKey: env.INFERENCE_API_KEY });
 * const { choices, usage } = await client.completions({ model: "deepseek-chat", prompt: ["a", "b"], max_tokens: 64 });
 * for await (const d of client.chatStream({ model: "deepseek-chat", messages })) process.stdout.write(d.content);
 */
export function createInferenceClient(config: InferenceClientConfig): InferenceClient {
  const cfg = { ...INFERENCE_CLIENT_DEFAULTS, ...stripUndefined(config) };
  const baseUrl = cfg.baseUrl.replace(/\/+$/, "");
  const doFetch = config.fetch ?? fetch;
  const random = config.random ?? Math.random;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json",
    ...(config.apiKey ? { authorization: `Bearer ${config.apiKey}` } : {}),
    ...config.headers,
  };

  const breaker = circuitBreaker(
    handleWhen((e) => e instanceof ModelUnavailableError || e instanceof InferenceTimeoutError),
    { halfOpenAfter: cfg.breakerHalfOpenAfterMs, breaker: new ConsecutiveBreaker(cfg.breakerThreshold) },
  );
  const retryPolicy = retry(
    handleWhen((e) => isRetryableInferenceError(e) && !isBrokenCircuitError(e)),
    {
      maxAttempts: cfg.retries,
      backoff: new DelegateBackoff((context: IRetryBackoffContext<unknown>) => {
        const error = "error" in context.result ? context.result.error : undefined;
        if (error instanceof InferenceError && error.retryAfterMs !== undefined) {
          return Math.min(error.retryAfterMs, cfg.maxRetryAfterMs);
        }
        const base = Math.min(cfg.maxBackoffMs, cfg.backoffFactorMs * 2 ** (context.attempt - 1));
        return base / 2 + (random() * base) / 2;
      }),
    },
  );
  if (config.onRetry) {
    const onRetry = config.onRetry;
    retryPolicy.onRetry((event) =>
      onRetry({
        attempt: event.attempt,
        delayMs: event.delay,
        error: "error" in event ? event.error : undefined,
      }),
    );
  }
  const limiter: BulkheadPolicy = bulkhead(cfg.maxConcurrency, Number.MAX_SAFE_INTEGER);
  // abortOnReturn: false keeps a stream's body readable after its headers arrived.
  const attemptTimeout = timeout(cfg.timeoutMs, {
    strategy: TimeoutStrategy.Aggressive,
    abortOnReturn: false,
  });
  const policy = wrap(retryPolicy, breaker, limiter);

  /** One attempt under the timeout, its failures mapped to typed errors. */
  async function attempt<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    outer: AbortSignal | undefined,
  ): Promise<T> {
    try {
      return await attemptTimeout.execute(({ signal }) => fn(signal), outer);
    } catch (error) {
      if (outer?.aborted) throw outer.reason ?? error;
      if (error instanceof InferenceError) throw error;
      if (isTaskCancelledError(error)) throw new InferenceTimeoutError(cfg.timeoutMs, { cause: error });
      const reason = error instanceof Error ? error.message : String(error);
      throw new ModelUnavailableError(`cannot reach the model server at ${baseUrl}: ${reason}`, {
        cause: error,
      });
    }
  }

  /** Runs `fn` under every policy; an open breaker becomes CircuitOpenError. */
  async function call<T>(
    fn: (signal: AbortSignal) => Promise<T>,
    outer: AbortSignal | undefined,
  ): Promise<T> {
    try {
      return await policy.execute(() => attempt(fn, outer), outer);
    } catch (error) {
      if (isBrokenCircuitError(error)) throw new CircuitOpenError({ cause: error });
      throw error;
    }
  }

  async function post(
    path: string,
    body: unknown,
    signal: AbortSignal,
    traceparent: string | undefined,
  ): Promise<Response> {
    const response = await doFetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: traceparent ? { ...headers, traceparent } : headers,
      body: JSON.stringify(body),
      signal,
    });
    if (!response.ok) throw errorFromResponse(response.status, await response.text(), response.headers);
    return response;
  }

  async function readJson<S extends z.ZodType>(response: Response, schema: S): Promise<z.infer<S>> {
    const text = await response.text();
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new ModelUnavailableError("the model server answered with invalid JSON", { cause: error });
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      throw new ModelUnavailableError(
        `the model server's answer has an unexpected shape: ${parsed.error.issues[0]?.message ?? ""}`,
        { cause: parsed.error },
      );
    }
    return parsed.data;
  }

  function requestBody(request: SamplingParams, fields: Record<string, unknown>): Record<string, unknown> {
    const { extra, model, max_tokens, temperature, seed, top_p, stop } = request;
    return stripUndefined({ ...extra, model, max_tokens, temperature, seed, top_p, stop, ...fields });
  }

  return {
    baseUrl,
    async completions(request, options = {}) {
      const prompts = typeof request.prompt === "string" ? 1 : request.prompt.length;
      const body = requestBody(request, { prompt: request.prompt });
      return call(async (signal) => {
        const data = await readJson(
          await post("/completions", body, signal, options.traceparent),
          completionSchema,
        );
        const choices = [...data.choices].sort((a, b) => a.index - b.index);
        if (choices.length !== prompts || choices.some((c, i) => c.index !== i)) {
          throw new ModelUnavailableError(
            `the model server returned ${choices.length} choices for ${prompts} prompts`,
          );
        }
        return {
          id: data.id,
          model: data.model,
          choices: choices.map((c) => ({
            index: c.index,
            text: c.text,
            finish_reason: c.finish_reason ?? "stop",
          })),
          usage: toUsage(data.usage),
          ...(data.system_fingerprint ? { system_fingerprint: data.system_fingerprint } : {}),
        };
      }, options.signal);
    },

    async chat(request, options = {}) {
      const body = requestBody(request, { messages: request.messages });
      return call(async (signal) => {
        const data = await readJson(
          await post("/chat/completions", body, signal, options.traceparent),
          chatSchema,
        );
        const first = [...data.choices].sort((a, b) => a.index - b.index)[0]!;
        return {
          id: data.id,
          model: data.model,
          text: first.message.content ?? "",
          finish_reason: first.finish_reason ?? "stop",
          ...(first.message.reasoning_content ? { reasoning_content: first.message.reasoning_content } : {}),
          usage: toUsage(data.usage),
          ...(data.system_fingerprint ? { system_fingerprint: data.system_fingerprint } : {}),
        };
      }, options.signal);
    },

    chatStream(request, options = {}) {
      const body = requestBody(request, {
        messages: request.messages,
        stream: true,
        stream_options: { include_usage: true },
      });
      return streamChat(body, options.signal, options.traceparent);
    },

    async models(options = {}) {
      return call(async (signal) => {
        const response = await doFetch(`${baseUrl}/models`, { headers, signal });
        if (!response.ok) throw errorFromResponse(response.status, await response.text(), response.headers);
        return (await readJson(response, modelsSchema)).data.map((m) => m.id);
      }, options.signal);
    },

    breakerState: () => BREAKER_STATES[breaker.state],
    onBreakerStateChange: (listener) => breaker.onStateChange((state) => listener(BREAKER_STATES[state])),
  };

  /**
   * Retries cover opening the stream (until the 200 and its headers); once
   * events flow, a failure surfaces to the caller, who has seen part of the answer.
   */
  async function* streamChat(
    body: unknown,
    outer: AbortSignal | undefined,
    traceparent: string | undefined,
  ): AsyncGenerator<ChatStreamDelta> {
    // Each attempt has its own controller: a timed-out attempt must not abort the next one.
    let current: AbortController | undefined;
    const abort = () => current?.abort(outer?.reason);
    outer?.addEventListener("abort", abort, { once: true });
    let idle: NodeJS.Timeout | undefined;
    let timedOut = false;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        timedOut = true;
        current?.abort();
      }, cfg.timeoutMs);
    };
    try {
      const response = await call(async (signal) => {
        const controller = new AbortController();
        current = controller;
        const onAttemptAbort = () => controller.abort();
        signal.addEventListener("abort", onAttemptAbort, { once: true });
        try {
          return await post("/chat/completions", body, controller.signal, traceparent);
        } finally {
          signal.removeEventListener("abort", onAttemptAbort);
        }
      }, outer);
      if (!response.body) throw new ModelUnavailableError("the model server sent an empty stream");
      armIdle();
      const events = response.body
        .pipeThrough(new TextDecoderStream())
        .pipeThrough(new EventSourceParserStream());
      let usage: Usage | undefined;
      let last: ChatStreamDelta | undefined;
      for await (const event of events) {
        armIdle();
        if (event.data === "[DONE]") break;
        let raw: unknown;
        try {
          raw = JSON.parse(event.data);
        } catch (error) {
          throw new ModelUnavailableError("the model server sent an event that is not JSON", {
            cause: error,
          });
        }
        const chunk = chatChunkSchema.safeParse(raw);
        if (!chunk.success) throw new ModelUnavailableError("the model server sent an unexpected event");
        if (chunk.data.usage) usage = toUsage(chunk.data.usage);
        for (const choice of chunk.data.choices) {
          const delta: ChatStreamDelta = {
            index: choice.index,
            content: choice.delta?.content ?? "",
            finish_reason: choice.finish_reason ?? null,
          };
          if (delta.finish_reason !== null) {
            // Hold the final delta until the usage event (vLLM and DeepSeek send it after).
            last = delta;
            continue;
          }
          if (delta.content !== "") yield delta;
        }
      }
      if (last) yield usage ? { ...last, usage } : last;
    } catch (error) {
      if (outer?.aborted) throw outer.reason ?? error;
      if (timedOut) throw new InferenceTimeoutError(cfg.timeoutMs, { cause: error });
      if (error instanceof InferenceError) throw error;
      throw new ModelUnavailableError("the model server's stream broke", { cause: error });
    } finally {
      clearTimeout(idle);
      outer?.removeEventListener("abort", abort);
      current?.abort();
    }
  }
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
