import {
  ERROR_CODES,
  type ErrorCode,
  HttpError,
  InvalidRequestError,
  toHttpError,
} from "../shared/errors.ts";

/**
 * OpenAI's error `type` for each of our API codes, so an OpenAI client raises the class it
 * would raise against OpenAI (`BadRequestError`, `AuthenticationError`, `NotFoundError`,
 * `RateLimitError`, `InternalServerError`…: the client picks it by HTTP status, the type says why).
 */
const OPENAI_TYPES: Record<ErrorCode, string> = {
  [ERROR_CODES.invalidRequest]: "invalid_request_error",
  [ERROR_CODES.promptTooLong]: "invalid_request_error",
  [ERROR_CODES.invalidCallbackUrl]: "invalid_request_error",
  [ERROR_CODES.unauthorized]: "authentication_error",
  [ERROR_CODES.notFound]: "invalid_request_error",
  [ERROR_CODES.idempotencyInProgress]: "invalid_request_error",
  [ERROR_CODES.idempotencyKeyReused]: "invalid_request_error",
  [ERROR_CODES.payloadTooLarge]: "invalid_request_error",
  [ERROR_CODES.quotaExceeded]: "insufficient_quota",
  [ERROR_CODES.rateLimited]: "rate_limit_exceeded",
  [ERROR_CODES.unavailable]: "server_error",
  [ERROR_CODES.internal]: "server_error",
};

/** A 400 that names the parameter at fault, so OpenAI's error body carries it as `param`. */
export class InvalidParamError extends InvalidRequestError {
  readonly param: string;
  constructor(param: string, message: string) {
    super(message);
    this.name = "InvalidParamError";
    this.param = param;
  }
}

/** OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/**
 * An error in OpenAI's shape, for the OpenAI-compatible routes (`/v1/chat/completions`,
 * `/v1/completions`, `/v1/models`, `/v1/files`, `/v1/batches`): the same status and
 * message as our own routes, our code as `code`, OpenAI's matching `type`, and the field at
 * fault as `param` when known (given, or an `InvalidParamError`'s).
 *
 * @example openAiError(new InvalidRequestError("max_tokens: too big"), "max_tokens")
 */
export function openAiError(
  error: unknown,
  param: string | null = error instanceof InvalidParamError ? error.param : null,
): { status: number; headers: Record<string, string>; body: OpenAiErrorBody } {
  const http: HttpError = error instanceof HttpError ? error : toHttpError(error);
  return {
    status: http.status,
    headers: http.headers,
    body: {
      error: {
        message: http.message,
        type: OPENAI_TYPES[http.code] ?? "server_error",
        param,
        code: http.code,
      },
    },
  };
}
