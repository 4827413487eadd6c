import type { RequestRecord } from "../../events/index.ts";
import { ERROR_CODES, type ErrorCode, FAILURE_CODES, HttpError, NotFoundError } from "../shared/errors.ts";
import { openAiError } from "./errors.ts";

/** A failed request's failure code as an HTTP status and our API code (then OpenAI's type). */
const FAILURE_STATUS: Record<string, { status: number; code: ErrorCode }> = {
  [FAILURE_CODES.modelUnavailable]: { status: 503, code: ERROR_CODES.unavailable },
  [FAILURE_CODES.deadlineExceeded]: { status: 504, code: ERROR_CODES.unavailable },
  [FAILURE_CODES.contextLengthExceeded]: { status: 400, code: ERROR_CODES.promptTooLong },
  [FAILURE_CODES.invalidRequest]: { status: 400, code: ERROR_CODES.invalidRequest },
};

/** The request failed in the pipeline (its record is `failed`): its failure code and message. */
export class RequestFailedError extends HttpError {
  readonly requestId: string;
  readonly failureCode: string;
  constructor(record: RequestRecord) {
    const failure = record.error ?? { code: FAILURE_CODES.internal, message: "the request failed" };
    const mapped = FAILURE_STATUS[failure.code] ?? { status: 500, code: ERROR_CODES.internal };
    super(mapped.status, mapped.code, `${failure.message} (request ${record.id})`);
    this.name = "RequestFailedError";
    this.requestId = record.id;
    this.failureCode = failure.code;
  }
}

/** No answer came in time for this HTTP response: the request goes on, its id can be polled. */
export class AnswerTimeoutError extends HttpError {
  readonly requestId: string;
  constructor(requestId: string) {
    super(
      504,
      ERROR_CODES.unavailable,
      `no answer yet; the request goes on: poll GET /v1/requests/${requestId} for its result`,
      { headers: { location: `/v1/requests/${requestId}` } },
    );
    this.name = "AnswerTimeoutError";
    this.requestId = requestId;
  }
}

/**
 * OpenAI's error shape for a failed request: `code` is the record's failure code
 * (`model_unavailable`, `deadline_exceeded`…, docs/api.md#failure-codes), the status fits it.
 *
 * @example failedRequestBody(record) // { status: 503, body: { error: { code: "model_unavailable", ... } } }
 */
export function failedRequestResponse(record: RequestRecord) {
  const error = new RequestFailedError(record);
  const response = openAiError(error);
  response.body.error.code = error.failureCode;
  return response;
}

/** A model the tenant may not name (not in `GET /v1/models`): OpenAI's 404 `model_not_found`. */
export class ModelNotFoundError extends NotFoundError {
  readonly param = "model";
  constructor(model: string) {
    super(`The model \`${model}\` does not exist or you do not have access to it.`);
    this.name = "ModelNotFoundError";
  }
}

/**
 * The text a stream showed is not the start of the stored answer (the attempt that streamed died
 * and the request was answered again, whole): the stream ends with this error rather than a text
 * that contradicts the stored one, which `GET /v1/requests/{id}` reads.
 */
export class StreamInterruptedError extends HttpError {
  readonly requestId: string;
  constructor(requestId: string) {
    super(
      502,
      ERROR_CODES.unavailable,
      `the stream was interrupted and the request answered again; read the answer: GET /v1/requests/${requestId}`,
      { headers: { location: `/v1/requests/${requestId}` } },
    );
    this.name = "StreamInterruptedError";
    this.requestId = requestId;
  }
}
