import type middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import {
  ERROR_CODES,
  type ErrorCode,
  HttpError,
  ServiceOverloadedError,
  toHttpError,
} from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";

/** middy's own errors (router 404, parser 415…) by status, as API codes (docs/api.md#errors). */
const STATUS_CODES: Record<number, ErrorCode> = {
  400: ERROR_CODES.invalidRequest,
  404: ERROR_CODES.notFound,
  405: ERROR_CODES.notFound,
  413: ERROR_CODES.payloadTooLarge,
  415: ERROR_CODES.invalidRequest,
  422: ERROR_CODES.invalidRequest,
};

/** Fixed public messages for middy's errors: their own text (parser internals) stays in the logs. */
const STATUS_MESSAGES: Record<number, string> = {
  400: "the request is malformed",
  404: "no such route",
  405: "no such route",
  413: "the body is too large",
  415: "unsupported content type: send application/json",
  422: "the request could not be processed",
};

/**
 * Maps anything thrown to a client-safe HttpError: ours as is, middy's by
 * status with a fixed message, middy's early timeout (the replica is too busy
 * to answer in time) to 503 + Retry-After, the rest to 500.
 */
function toClientError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if ((error as Error)?.name === "TimeoutError") {
    return new ServiceOverloadedError("ingest is overloaded; nothing was accepted, retry shortly", 1, {
      cause: error,
    });
  }
  const status = (error as { statusCode?: number })?.statusCode;
  const code = status ? STATUS_CODES[status] : undefined;
  if (status && code) return new HttpError(status, code, STATUS_MESSAGES[status] ?? code, { cause: error });
  return toHttpError(error);
}

/**
 * The API's error body `{"error": {"code", "message"}}` for every failure,
 * never a stack or an internal message; 5xx are logged with their cause.
 * Like middy's http-error-handler, it only answers when no response exists yet.
 *
 * @example middy(router).use(errorResponseMiddleware({ logger }))
 */
export function errorResponseMiddleware(options: {
  logger: Logger;
}): middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  const errorResponseOnError: middy.MiddlewareFn<
    APIGatewayProxyEventV2,
    APIGatewayProxyStructuredResultV2
  > = (request) => {
    if (request.response !== undefined) return;
    const error = toClientError(request.error);
    if (error.status >= 500) {
      options.logger.error(
        { err: error.cause ?? error, path: request.event?.rawPath, code: error.code },
        "request failed",
      );
    }
    request.response = {
      statusCode: error.status,
      headers: { "content-type": "application/json", ...error.headers },
      body: JSON.stringify(error.toBody()),
    };
  };
  return { onError: errorResponseOnError };
}
