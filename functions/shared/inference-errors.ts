import { z } from "zod";
import { DeepqueueError, FAILURE_CODES, type FailureCode } from "./errors.ts";

/**
 * What a model call can end in, split the way callers act on it: retryable
 * (the model is unavailable, rate limited or slow: try again, or degrade) or
 * permanent (the request itself is wrong: fail it). `errorFromResponse` maps
 * an HTTP answer from vLLM, SGLang or the DeepSeek API to one of them.
 */

/** Base of every error a model call can end in. `retryable` says whether the same call may succeed later. */
export class InferenceError extends DeepqueueError {
  readonly retryable: boolean;
  /** The HTTP status, when the server answered. */
  readonly status: number | undefined;
  /** What a failed request record carries (docs/api.md#failure-codes). */
  readonly failureCode: FailureCode;
  /** The server's Retry-After, in ms. */
  readonly retryAfterMs: number | undefined;
  constructor(
    message: string,
    options: {
      retryable: boolean;
      failureCode: FailureCode;
      status?: number | undefined;
      retryAfterMs?: number | undefined;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.name = "InferenceError";
    this.retryable = options.retryable;
    this.failureCode = options.failureCode;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** 5xx, a refused or dropped connection, a malformed answer: the model is (for now) not serving. Retryable. */
export class ModelUnavailableError extends InferenceError {
  constructor(message: string, options: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { ...options, retryable: true, failureCode: FAILURE_CODES.modelUnavailable });
    this.name = "ModelUnavailableError";
  }
}

/** The breaker is open: recent calls failed, so this one was not even tried. Degrade now. */
export class CircuitOpenError extends ModelUnavailableError {
  constructor(options: { cause?: unknown } = {}) {
    super("the model server is failing; the circuit breaker is open and no call was made", options);
    this.name = "CircuitOpenError";
  }
}

/** 429 from the model server. Retryable, after `retryAfterMs` when the server said. */
export class ModelRateLimitedError extends InferenceError {
  constructor(message: string, options: { retryAfterMs?: number | undefined; cause?: unknown } = {}) {
    super(message, { ...options, status: 429, retryable: true, failureCode: FAILURE_CODES.modelUnavailable });
    this.name = "ModelRateLimitedError";
  }
}

/** No (complete) answer within the per-attempt timeout. Retryable. */
export class InferenceTimeoutError extends InferenceError {
  readonly timeoutMs: number | undefined;
  constructor(
    timeoutMs: number | undefined,
    options: { status?: number; message?: string; cause?: unknown } = {},
  ) {
    super(options.message ?? `the model server did not answer within ${timeoutMs} ms`, {
      ...options,
      retryable: true,
      failureCode: FAILURE_CODES.modelUnavailable,
    });
    this.name = "InferenceTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/** vLLM's (and DeepSeek's) 400 "maximum context length": prompt + max_tokens do not fit. Permanent. */
export class ContextLengthError extends InferenceError {
  /** The model's context window, when the message says. */
  readonly maxModelLen: number | undefined;
  /** Prompt + max_tokens, when the message says. */
  readonly requestedTokens: number | undefined;
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, {
      ...options,
      status: 400,
      retryable: false,
      failureCode: FAILURE_CODES.contextLengthExceeded,
    });
    this.name = "ContextLengthError";
    this.maxModelLen = numberAfter(message, /maximum context length is (\d+)/);
    this.requestedTokens = numberAfter(message, /requested (\d+) tokens/);
  }
}

/** Any other 4xx (bad parameter, unknown model, bad key, no balance). Permanent. */
export class InvalidModelRequestError extends InferenceError {
  constructor(message: string, options: { status: number; cause?: unknown }) {
    super(message, { ...options, retryable: false, failureCode: FAILURE_CODES.invalidRequest });
    this.name = "InvalidModelRequestError";
  }
}

/**
 * A streamed answer broke after part of it reached the caller (the batcher had sent `delta`
 * messages). Not retried and not degraded: a second answer would contradict the text already
 * shown, so the request fails with `model_unavailable`.
 */
export class StreamInterruptedError extends InferenceError {
  constructor(options: { cause?: unknown } = {}) {
    super("the model's stream broke after part of the answer was sent to the caller", {
      ...options,
      retryable: false,
      failureCode: FAILURE_CODES.modelUnavailable,
    });
    this.name = "StreamInterruptedError";
  }
}

function numberAfter(text: string, pattern: RegExp): number | undefined {
  const match = pattern.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** Whether `error` may succeed if tried again later (for callers outside the client's own retries). */
export function isRetryableInferenceError(error: unknown): boolean {
  return error instanceof InferenceError && error.retryable;
}

const errorBodySchema = z.union([
  z.object({ error: z.object({ message: z.string(), code: z.unknown().optional() }) }),
  z.object({ message: z.string() }),
  z.object({ detail: z.string() }),
]);

/** Retry-After as seconds or an HTTP date, in ms. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function errorMessage(text: string): string {
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(text));
    if (parsed.success) {
      const body = parsed.data;
      if ("error" in body) return body.error.message;
      if ("message" in body) return body.message;
      return body.detail;
    }
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 500) || "(empty body)";
}

/** Maps an HTTP error answer to the typed error callers act on. */
export function errorFromResponse(
  status: number,
  bodyText: string,
  headers: Pick<Headers, "get">,
): InferenceError {
  const message = `model server answered ${status}: ${errorMessage(bodyText)}`;
  const retryAfterMs = parseRetryAfter(headers.get("retry-after"));
  if (status === 429) return new ModelRateLimitedError(message, { retryAfterMs });
  if (status === 400 && /maximum context length|context_length_exceeded/i.test(bodyText)) {
    return new ContextLengthError(message);
  }
  if (status === 408) return new InferenceTimeoutError(undefined, { status, message });
  if (status >= 400 && status < 500) return new InvalidModelRequestError(message, { status });
  return new ModelUnavailableError(message, { status, retryAfterMs });
}

/**
 * The message a failed request's record shows its tenant: fixed per failure
 * code, never the model server's own text or address (those go to the logs).
 * Only a context-length refusal keeps the two numbers the tenant can act on.
 *
 * @example publicFailureMessage(new ModelUnavailableError("cannot reach http://10.0.3.4:8000")); // "the model server is unavailable"
 */
export function publicFailureMessage(error: unknown, code?: FailureCode): string {
  if (error instanceof ContextLengthError) {
    const { maxModelLen, requestedTokens } = error;
    return maxModelLen
      ? `the prompt and max_tokens${requestedTokens ? ` (${requestedTokens} tokens)` : ""} do not fit the model's ${maxModelLen}-token context window`
      : PUBLIC_FAILURE_MESSAGES.context_length_exceeded;
  }
  const failureCode = code ?? (error instanceof InferenceError ? error.failureCode : FAILURE_CODES.internal);
  return PUBLIC_FAILURE_MESSAGES[failureCode];
}

/** Fixed texts for failed records, by failure code. */
const PUBLIC_FAILURE_MESSAGES: Readonly<Record<FailureCode, string>> = {
  model_unavailable: "the model server is unavailable",
  deadline_exceeded: "no answer before the deadline",
  context_length_exceeded: "the prompt and max_tokens do not fit the model's context window",
  invalid_request: "the model server refused the request",
  internal_error: "internal error",
};
