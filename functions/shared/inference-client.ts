import { Readable } from "node:stream";
import {
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  DelegateBackoff,
  ExponentialBackoff,
  handleWhen,
  type IBackoff,
  type IPolicy,
  type IRetryBackoffContext,
  isBrokenCircuitError,
  isTaskCancelledError,
  noJitterGenerator,
  type RetryPolicy,
  retry,
  type TimeoutPolicy,
  TimeoutStrategy,
  timeout,
  wrap,
} from "cockatiel";
import { EventSourceParserStream } from "eventsource-parser/stream";
import { Agent, request as undiciRequest } from "undici";
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

import { withoutUndefined } from "./options.ts";

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

export interface InferenceClientOptions
  extends Partial<Record<keyof typeof INFERENCE_CLIENT_DEFAULTS, number>> {
  /** OpenAI-compatible base URL (INFERENCE_URL), e.g. `http://127.0.0.1:8000/v1` or `https://api.deepseek.com`. */
  baseUrl: string;
  /** Bearer key (INFERENCE_API_KEY). */
  apiKey?: string | undefined;
  /** Extra headers on every call. */
  headers?: Record<string, string>;
  /** For tests: a fetch (the default speaks HTTP through undici's `request`), and a random source for the jitter. */
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
  /** One prompt's completion as it is generated (the same deltas as a chat stream). */
  completionsStream(
    request: CompletionRequest & { prompt: string },
    options?: CallOptions,
  ): AsyncIterable<ChatStreamDelta>;
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
      /** A completions stream's text (a chat stream's is in `delta`). */
      text: z.string().nullish(),
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
    prompt_cache_hit_tokens: usage.prompt_cache_hit_tokens,
    prompt_cache_miss_tokens: usage.prompt_cache_miss_tokens,
  };
}

// ---------------------------------------------------------------- the client

const BREAKER_STATES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half-open",
  [CircuitState.Isolated]: "isolated",
};

type Settings = typeof INFERENCE_CLIENT_DEFAULTS extends infer D ? { [K in keyof D]: number } : never;

/**
 * @example
 * const client = createInferenceClient({ baseUrl: env.INFERENCE_URL, apiKey: env.INFERENCE_API_KEY });
 * const { choices, usage } = await client.completions({ model: "deepseek-chat", prompt: ["a", "b"], max_tokens: 64 });
 * for await (const d of client.chatStream({ model: "deepseek-chat", messages })) process.stdout.write(d.content);
 */
export function createInferenceClient(options: InferenceClientOptions): InferenceClient {
  return new HttpInferenceClient(options);
}

/** The InferenceClient over HTTP, every call under the policies described at the top of this module. */
class HttpInferenceClient implements InferenceClient {
  readonly baseUrl: string;
  readonly #settings: Settings;
  readonly #fetch: Transport;
  readonly #headers: Record<string, string>;
  readonly #breaker: CircuitBreakerPolicy;
  readonly #policy: IPolicy;
  // abortOnReturn: false keeps a stream's body readable after its headers arrived.
  readonly #attemptTimeout: TimeoutPolicy;

  constructor(options: InferenceClientOptions) {
    const settings = { ...INFERENCE_CLIENT_DEFAULTS, ...withoutUndefined(options) };
    this.#settings = settings;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#fetch = options.fetch ?? undiciTransport();
    this.#headers = {
      "content-type": "application/json",
      accept: "application/json",
      ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
      ...options.headers,
    };
    this.#breaker = circuitBreaker(
      handleWhen((e) => e instanceof ModelUnavailableError || e instanceof InferenceTimeoutError),
      {
        halfOpenAfter: settings.breakerHalfOpenAfterMs,
        breaker: new ConsecutiveBreaker(settings.breakerThreshold),
      },
    );
    const limiter = bulkhead(settings.maxConcurrency, Number.MAX_SAFE_INTEGER);
    this.#policy = wrap(retryPolicy(settings, options), this.#breaker, limiter);
    this.#attemptTimeout = timeout(settings.timeoutMs, {
      strategy: TimeoutStrategy.Aggressive,
      abortOnReturn: false,
    });
  }

  async completions(request: CompletionRequest, options: CallOptions = {}): Promise<CompletionResult> {
    const prompts = typeof request.prompt === "string" ? 1 : request.prompt.length;
    const body = requestBody(request, { prompt: request.prompt });
    return this.#call(async (signal) => {
      const response = await this.#post("/completions", body, signal, options.traceparent);
      const data = await readJson(response, completionSchema);
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
        system_fingerprint: data.system_fingerprint || undefined,
      };
    }, options.signal);
  }

  async chat(request: ChatRequest, options: CallOptions = {}): Promise<ChatResult> {
    const body = requestBody(request, { messages: request.messages });
    return this.#call(async (signal) => {
      const response = await this.#post("/chat/completions", body, signal, options.traceparent);
      const data = await readJson(response, chatSchema);
      const first = [...data.choices].sort((a, b) => a.index - b.index)[0]!;
      return {
        id: data.id,
        model: data.model,
        text: first.message.content ?? "",
        finish_reason: first.finish_reason ?? "stop",
        reasoning_content: first.message.reasoning_content || undefined,
        usage: toUsage(data.usage),
        system_fingerprint: data.system_fingerprint || undefined,
      };
    }, options.signal);
  }

  chatStream(request: ChatRequest, options: CallOptions = {}): AsyncIterable<ChatStreamDelta> {
    const body = requestBody(request, { messages: request.messages, ...STREAM_FIELDS });
    return this.#stream("/chat/completions", body, options);
  }

  completionsStream(
    request: CompletionRequest & { prompt: string },
    options: CallOptions = {},
  ): AsyncIterable<ChatStreamDelta> {
    const body = requestBody(request, { prompt: request.prompt, ...STREAM_FIELDS });
    return this.#stream("/completions", body, options);
  }

  async models(options: CallOptions = {}): Promise<string[]> {
    return this.#call(async (signal) => {
      const response = await this.#fetch(`${this.baseUrl}/models`, { headers: this.#headers, signal });
      if (!response.ok) throw errorFromResponse(response.status, await response.text(), response.headers);
      return (await readJson(response, modelsSchema)).data.map((m) => m.id);
    }, options.signal);
  }

  breakerState(): BreakerState {
    return BREAKER_STATES[this.#breaker.state];
  }

  onBreakerStateChange(listener: (state: BreakerState) => void): { dispose(): void } {
    return this.#breaker.onStateChange((state) => listener(BREAKER_STATES[state]));
  }

  /** Runs `fn` under every policy; an open breaker becomes CircuitOpenError. */
  async #call<T>(fn: (signal: AbortSignal) => Promise<T>, outer: AbortSignal | undefined): Promise<T> {
    try {
      return await this.#policy.execute(() => this.#attempt(fn, outer), outer);
    } catch (error) {
      if (isBrokenCircuitError(error)) throw new CircuitOpenError({ cause: error });
      throw error;
    }
  }

  /** One attempt under the timeout, its failures mapped to typed errors. */
  async #attempt<T>(fn: (signal: AbortSignal) => Promise<T>, outer: AbortSignal | undefined): Promise<T> {
    try {
      return await this.#attemptTimeout.execute(({ signal }) => fn(signal), outer);
    } catch (error) {
      if (outer?.aborted) throw outer.reason ?? error;
      if (error instanceof InferenceError) throw error;
      if (isTaskCancelledError(error)) {
        throw new InferenceTimeoutError(this.#settings.timeoutMs, { cause: error });
      }
      const reason = error instanceof Error ? error.message : String(error);
      throw new ModelUnavailableError(`cannot reach the model server at ${this.baseUrl}: ${reason}`, {
        cause: error,
      });
    }
  }

  async #post(path: string, body: unknown, signal: AbortSignal, traceparent?: string): Promise<ModelAnswer> {
    const response = await this.#fetch(`${this.baseUrl}${path}`, {
      method: "POST",
      headers: traceparent ? { ...this.#headers, traceparent } : this.#headers,
      body: JSON.stringify(body),
      signal,
    });
    if (!response.ok) throw errorFromResponse(response.status, await response.text(), response.headers);
    return response;
  }

  /**
   * Retries cover opening the stream (until the 200 and its headers); once
   * events flow, a failure surfaces to the caller, who has seen part of the answer.
   */
  async *#stream(path: string, body: unknown, options: CallOptions): AsyncGenerator<ChatStreamDelta> {
    const watch = new StreamWatch(options.signal, this.#settings.timeoutMs);
    try {
      const response = await this.#call(
        (signal) => watch.attempt(signal, (own) => this.#post(path, body, own, options.traceparent)),
        options.signal,
      );
      if (!response.body) throw new ModelUnavailableError("the model server sent an empty stream");
      yield* readDeltas(response.body, () => watch.alive());
    } catch (error) {
      throw watch.failure(error);
    } finally {
      watch.close();
    }
  }
}

/** Asks an OpenAI-compatible server to stream, with the usage in its last event. */
const STREAM_FIELDS = { stream: true, stream_options: { include_usage: true } };

/**
 * Retries of transient failures: exponential backoff (cockatiel's) jittered to 50–100 % of each
 * delay, or the server's Retry-After when it sent one (capped at maxRetryAfterMs).
 */
function retryPolicy(settings: Settings, options: InferenceClientOptions): RetryPolicy {
  const random = options.random ?? Math.random;
  const exponential = new ExponentialBackoff<number>({
    initialDelay: settings.backoffFactorMs,
    maxDelay: settings.maxBackoffMs,
    generator: (attempts, generatorOptions) => {
      const [delay, next] = noJitterGenerator(attempts, generatorOptions);
      return [delay / 2 + (random() * delay) / 2, next];
    },
  });
  const policy = retry(
    handleWhen((e) => isRetryableInferenceError(e) && !isBrokenCircuitError(e)),
    {
      maxAttempts: settings.retries,
      backoff: new DelegateBackoff<IRetryBackoffContext<unknown>, IBackoff<unknown>>((context, previous) => {
        const next = (previous ?? exponential).next(context);
        const error = "error" in context.result ? context.result.error : undefined;
        const retryAfter = error instanceof InferenceError ? error.retryAfterMs : undefined;
        const delay =
          retryAfter === undefined ? next.duration : Math.min(retryAfter, settings.maxRetryAfterMs);
        return { delay, state: next };
      }),
    },
  );
  const { onRetry } = options;
  if (onRetry) {
    policy.onRetry((event) =>
      onRetry({
        attempt: event.attempt,
        delayMs: event.delay,
        error: "error" in event ? event.error : undefined,
      }),
    );
  }
  return policy;
}

/**
 * One stream's abort wiring: each attempt to open it has its own controller (a timed-out attempt
 * must not abort the next one), the caller's signal aborts the current one, and once events flow
 * an idle timer aborts a stream silent for `timeoutMs`.
 */
class StreamWatch {
  #current: AbortController | undefined;
  #idle: NodeJS.Timeout | undefined;
  #timedOut = false;
  readonly #onOuterAbort = () => this.#current?.abort(this.outer?.reason);

  constructor(
    private readonly outer: AbortSignal | undefined,
    private readonly timeoutMs: number,
  ) {
    outer?.addEventListener("abort", this.#onOuterAbort, { once: true });
  }

  /** Runs one attempt to open the stream with a controller of its own, aborted with the attempt's `signal`. */
  async attempt<T>(signal: AbortSignal, open: (own: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    this.#current = controller;
    const onAttemptAbort = () => controller.abort();
    signal.addEventListener("abort", onAttemptAbort, { once: true });
    try {
      return await open(controller.signal);
    } finally {
      signal.removeEventListener("abort", onAttemptAbort);
    }
  }

  /** An event arrived (or the stream opened): the idle timer starts again. */
  alive(): void {
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => {
      this.#timedOut = true;
      this.#current?.abort();
    }, this.timeoutMs);
  }

  /** The typed error a failed stream surfaces as. */
  failure(error: unknown): unknown {
    if (this.outer?.aborted) return this.outer.reason ?? error;
    if (this.#timedOut) return new InferenceTimeoutError(this.timeoutMs, { cause: error });
    if (error instanceof InferenceError) return error;
    return new ModelUnavailableError("the model server's stream broke", { cause: error });
  }

  close(): void {
    clearTimeout(this.#idle);
    this.outer?.removeEventListener("abort", this.#onOuterAbort);
    this.#current?.abort();
  }
}

/**
 * The deltas of a server-sent event stream (chat or completions), in order; the one carrying
 * `finish_reason` is held until the usage event (vLLM and DeepSeek send it after) and comes last.
 */
async function* readDeltas(
  body: ReadableStream<Uint8Array>,
  alive: () => void,
): AsyncGenerator<ChatStreamDelta> {
  alive();
  const events = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  let usage: Usage | undefined;
  let last: ChatStreamDelta | undefined;
  for await (const event of events) {
    alive();
    if (event.data === "[DONE]") break;
    const chunk = parseJson(event.data, chatChunkSchema, {
      json: "the model server sent an event that is not JSON",
      shape: "the model server sent an unexpected event",
    });
    if (chunk.usage) usage = toUsage(chunk.usage);
    for (const choice of chunk.choices) {
      const content = choice.delta?.content ?? choice.text ?? "";
      const delta: ChatStreamDelta = {
        index: choice.index,
        content,
        finish_reason: choice.finish_reason ?? null,
      };
      if (delta.finish_reason !== null) last = delta;
      else if (content !== "") yield delta;
    }
  }
  if (last) yield usage ? { ...last, usage } : last;
}

/** Parses a model server's JSON text with `schema`; anything else is a ModelUnavailableError saying what was wrong. */
function parseJson<S extends z.ZodType>(
  text: string,
  schema: S,
  what: { json: string; shape: string },
): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ModelUnavailableError(what.json, { cause: error });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]?.message ?? "";
    throw new ModelUnavailableError(`${what.shape}: ${issue}`, { cause: parsed.error });
  }
  return parsed.data;
}

async function readJson<S extends z.ZodType>(response: ModelAnswer, schema: S): Promise<z.infer<S>> {
  return parseJson(await response.text(), schema, {
    json: "the model server answered with invalid JSON",
    shape: "the model server's answer has an unexpected shape",
  });
}

/** What the client reads of a model server's answer (a fetch Response has it all). */
interface ModelAnswer {
  ok: boolean;
  status: number;
  headers: Pick<Headers, "get">;
  text(): Promise<string>;
  body: ReadableStream<Uint8Array> | null;
}

/** The one HTTP call the client makes: fetch's shape, as much of it as the client uses. */
type Transport = (
  url: string,
  init: { method?: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<ModelAnswer>;

/** One connection pool for every client in the process: keep-alive connections to the model servers. */
let sharedAgent: Agent | undefined;

/**
 * The default transport: undici's `request`, which costs the batcher a third to a half of a global
 * `fetch` per model call in CPU (no WHATWG Request, Response and Headers objects; a stream's
 * body becomes a web stream only when it is read as one).
 */
function undiciTransport(): Transport {
  return async (url, init) => {
    sharedAgent ??= new Agent();
    const { statusCode, headers, body } = await undiciRequest(url, {
      method: (init.method ?? "GET") as "GET" | "POST",
      headers: init.headers,
      body: init.body ?? null,
      signal: init.signal,
      dispatcher: sharedAgent,
    });
    let web: ReadableStream<Uint8Array> | undefined;
    return {
      ok: statusCode >= 200 && statusCode < 300,
      status: statusCode,
      headers: {
        get: (name) => {
          const value = headers[name.toLowerCase()];
          return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
        },
      },
      text: () => body.text(),
      get body() {
        web ??= Readable.toWeb(body) as ReadableStream<Uint8Array>;
        return web;
      },
    };
  };
}

function requestBody(request: SamplingParams, fields: Record<string, unknown>): Record<string, unknown> {
  const { extra, model, max_tokens, temperature, seed, top_p, stop } = request;
  return { ...extra, model, max_tokens, temperature, seed, top_p, stop, ...fields };
}
