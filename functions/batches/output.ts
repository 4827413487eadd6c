import type { BatchEndpoint, BatchOutputLine, ErrorDetail, Result } from "../../events/index.ts";
import { FAILURE_CODES } from "../shared/errors.ts";

/** What the output needs of a line's request record. */
export interface LineRecord {
  id: string;
  status: string;
  model: string;
  created_at: string;
  completed_at?: string;
  result?: Result;
  error?: ErrorDetail;
}

/**
 * The HTTP status OpenAI would have answered for each way a request fails: the model refused it
 * (400), it ran out of time (504), the model server was down (503), anything else (500).
 */
const FAILURE_STATUS: Record<string, number> = {
  [FAILURE_CODES.invalidRequest]: 400,
  [FAILURE_CODES.contextLengthExceeded]: 400,
  quota_exceeded: 429,
  [FAILURE_CODES.deadlineExceeded]: 504,
  [FAILURE_CODES.modelUnavailable]: 503,
};

const seconds = (iso: string | undefined) => Math.floor(Date.parse(iso ?? new Date().toISOString()) / 1000);

/**
 * A completed record as the endpoint's response body: OpenAI's `chat.completion` or
 * `text_completion` object, `id` = the request id (also readable at GET /v1/requests/{id}).
 *
 * @example responseBody(record, "/v1/chat/completions").choices[0].message.content
 */
export function responseBody(record: LineRecord & { result: Result }, endpoint: BatchEndpoint) {
  const { text, finish_reason, usage } = record.result;
  const common = {
    id: record.id,
    created: seconds(record.completed_at ?? record.created_at),
    model: record.model,
    usage: {
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      total_tokens: usage.prompt_tokens + usage.completion_tokens,
    },
  };
  if (endpoint === "/v1/completions") {
    return {
      ...common,
      object: "text_completion" as const,
      choices: [{ index: 0, text, logprobs: null, finish_reason }],
    };
  }
  return {
    ...common,
    object: "chat.completion" as const,
    choices: [
      { index: 0, message: { role: "assistant" as const, content: text }, logprobs: null, finish_reason },
    ],
  };
}

/** The id of a line in the output and error files (OpenAI's `batch_req_` prefix). */
export function outputLineId(requestId: string): string {
  return `batch_req_${requestId.replace(/^req_/, "")}`;
}

/**
 * The output- or error-file line of one input line: a completed request's response (output
 * file), a failed one's error response (error file), or — for a line that never ran because the
 * batch expired or was cancelled — `response: null` and the reason (error file).
 */
export function outputLine(
  custom_id: string,
  requestId: string,
  record: LineRecord | undefined,
  endpoint: BatchEndpoint,
  unfinished: { code: "batch_expired" | "batch_cancelled"; message: string },
): { file: "output" | "error"; line: BatchOutputLine } {
  const id = outputLineId(requestId);
  if (record?.status === "completed" && record.result) {
    const body = responseBody({ ...record, result: record.result }, endpoint);
    return {
      file: "output",
      line: { id, custom_id, response: { status_code: 200, request_id: requestId, body }, error: null },
    };
  }
  if (record?.status === "failed" && record.error) {
    const status = FAILURE_STATUS[record.error.code] ?? 500;
    // OpenAI's error body, with the type its client would see at that status.
    const type =
      status === 429 ? "insufficient_quota" : status < 500 ? "invalid_request_error" : "server_error";
    const body = { error: { message: record.error.message, type, param: null, code: record.error.code } };
    return {
      file: "error",
      line: { id, custom_id, response: { status_code: status, request_id: requestId, body }, error: null },
    };
  }
  return { file: "error", line: { id, custom_id, response: null, error: unfinished } };
}
