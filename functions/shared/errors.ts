/**
 * Typed errors. Every error a client can see carries its `code` (docs/api.md#errors) and
 * HTTP `status`; everything else is an internal error that is never echoed.
 */

export const ERROR_CODES = {
  invalidRequest: "invalid_request",
  promptTooLong: "prompt_too_long",
  invalidCallbackUrl: "invalid_callback_url",
  unauthorized: "unauthorized",
  notFound: "not_found",
  idempotencyInProgress: "idempotency_in_progress",
  idempotencyKeyReused: "idempotency_key_reused",
  payloadTooLarge: "payload_too_large",
  quotaExceeded: "quota_exceeded",
  rateLimited: "rate_limited",
  unavailable: "unavailable",
  internal: "internal_error",
} as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** Codes a failed request record can carry (docs/api.md#failure-codes). */
export const FAILURE_CODES = {
  modelUnavailable: "model_unavailable",
  deadlineExceeded: "deadline_exceeded",
  contextLengthExceeded: "context_length_exceeded",
  invalidRequest: "invalid_request",
  internal: "internal_error",
} as const;
export type FailureCode = (typeof FAILURE_CODES)[keyof typeof FAILURE_CODES];

export interface DeepqueueErrorOptions {
  cause?: unknown;
}

/** Base of every deepqueue error. */
export class DeepqueueError extends Error {
  constructor(message: string, options: DeepqueueErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "DeepqueueError";
  }
}

/** An error with an API code and status (docs/api.md#errors), safe to show the client. */
export class HttpError extends DeepqueueError {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    options: DeepqueueErrorOptions & { headers?: Record<string, string> } = {},
  ) {
    super(message, options);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.headers = options.headers ?? {};
  }

  /** The API's JSON error body: `{"error": {"code", "message"}}`. */
  toBody(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export class InvalidRequestError extends HttpError {
  constructor(message: string, options?: DeepqueueErrorOptions) {
    super(400, ERROR_CODES.invalidRequest, message, options);
    this.name = "InvalidRequestError";
  }
}

export class PromptTooLongError extends HttpError {
  readonly promptTokens: number;
  readonly limit: number;
  /** `atLeast`: `promptTokens` is a lower bound (the prompt was refused without being fully counted). */
  constructor(promptTokens: number, limit: number, options: { atLeast?: boolean } = {}) {
    super(
      400,
      ERROR_CODES.promptTooLong,
      `the prompt is ${options.atLeast ? "at least " : ""}${promptTokens} tokens; with max_tokens it must fit the model's ${limit}-token context window`,
    );
    this.name = "PromptTooLongError";
    this.promptTokens = promptTokens;
    this.limit = limit;
  }
}

export class InvalidCallbackUrlError extends HttpError {
  constructor(message: string, options?: DeepqueueErrorOptions) {
    super(400, ERROR_CODES.invalidCallbackUrl, message, options);
    this.name = "InvalidCallbackUrlError";
  }
}

export class UnauthorizedError extends HttpError {
  constructor(message = "missing or invalid credentials", options?: DeepqueueErrorOptions) {
    super(401, ERROR_CODES.unauthorized, message, options);
    this.name = "UnauthorizedError";
  }
}

export class NotFoundError extends HttpError {
  constructor(message = "not found") {
    super(404, ERROR_CODES.notFound, message);
    this.name = "NotFoundError";
  }
}

export class IdempotencyInProgressError extends HttpError {
  constructor() {
    super(
      409,
      ERROR_CODES.idempotencyInProgress,
      "the first request with this Idempotency-Key is still being accepted; retry shortly",
      { headers: { "retry-after": "1" } },
    );
    this.name = "IdempotencyInProgressError";
  }
}

export class IdempotencyKeyReusedError extends HttpError {
  constructor() {
    super(
      422,
      ERROR_CODES.idempotencyKeyReused,
      "this Idempotency-Key was already used with a different body",
    );
    this.name = "IdempotencyKeyReusedError";
  }
}

export class PayloadTooLargeError extends HttpError {
  constructor(limitBytes: number) {
    super(413, ERROR_CODES.payloadTooLarge, `the body is larger than ${limitBytes} bytes`);
    this.name = "PayloadTooLargeError";
  }
}

/** An error the client may retry after `retryAfterSeconds`: sent as a Retry-After header (whole seconds, at least 1). */
export class RetryAfterError extends HttpError {
  readonly retryAfterSeconds: number;
  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    retryAfterSeconds: number,
    options?: DeepqueueErrorOptions,
  ) {
    super(status, code, message, {
      ...options,
      headers: { "retry-after": String(Math.max(1, Math.ceil(retryAfterSeconds))) },
    });
    this.name = "RetryAfterError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class QuotaExceededError extends RetryAfterError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, ERROR_CODES.quotaExceeded, message, retryAfterSeconds);
    this.name = "QuotaExceededError";
  }
}

export class RateLimitedError extends RetryAfterError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, ERROR_CODES.rateLimited, message, retryAfterSeconds);
    this.name = "RateLimitedError";
  }
}

export class UnavailableError extends HttpError {
  constructor(
    message = "the service cannot reach its queue or table; nothing was accepted",
    options?: DeepqueueErrorOptions,
  ) {
    super(503, ERROR_CODES.unavailable, message, options);
    this.name = "UnavailableError";
  }
}

/** This replica is overloaded: 503 with a Retry-After, never a 500 (nothing was accepted). */
export class ServiceOverloadedError extends RetryAfterError {
  constructor(message: string, retryAfterSeconds: number, options?: DeepqueueErrorOptions) {
    super(503, ERROR_CODES.unavailable, message, retryAfterSeconds, options);
    this.name = "ServiceOverloadedError";
  }
}

/** A missing or malformed configuration value, raised at start-up. */
export class ConfigError extends DeepqueueError {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/**
 * A component built with a bad or contradictory option, raised where it is built: names the
 * component and the options.
 *
 * @example throw new OptionsError("sqs worker cache", ["batchSize"], "must be at most 10");
 */
export class OptionsError extends DeepqueueError {
  readonly component: string;
  readonly options: readonly string[];
  constructor(component: string, options: readonly string[], message: string) {
    super(`${component}: option ${options.join(", ")}: ${message}`);
    this.name = "OptionsError";
    this.component = component;
    this.options = options;
  }
}

/** Turns any thrown value into a client-safe HttpError (internal details never leak). */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  return new HttpError(500, ERROR_CODES.internal, "internal error", { cause: error });
}
