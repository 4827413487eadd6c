/**
 * Every error code the HTTP API answers with, its status and when it happens:
 * the source of the OpenAPI document's error responses and docs/api.md#errors.
 * `functions/shared/errors.ts` raises them (a test keeps the two in step).
 */
export const API_ERRORS = {
  invalid_request: { status: 400, when: "malformed JSON or a schema violation; the message names the field" },
  prompt_too_long: {
    status: 400,
    when: "the prompt plus max_tokens does not fit the model's context window",
  },
  invalid_callback_url: {
    status: 400,
    when: "callback_url is not https, or resolves to a private, loopback or link-local address (loopback is allowed in dev mode)",
  },
  unauthorized: { status: 401, when: "missing or wrong API key, bad JWT, bad, stale or replayed signature" },
  not_found: { status: 404, when: "unknown id, another tenant's id, or no such route" },
  idempotency_in_progress: {
    status: 409,
    when: "the first request with this Idempotency-Key is still being accepted; retry after Retry-After",
  },
  payload_too_large: { status: 413, when: "the body is larger than 256 KiB" },
  idempotency_key_reused: { status: 422, when: "the Idempotency-Key was already used with a different body" },
  quota_exceeded: {
    status: 429,
    when: "the tenant's daily request or token quota is used up; Retry-After is the seconds to 00:00 UTC",
  },
  rate_limited: {
    status: 429,
    when: "over the tenant's per-replica rate limit, or the table is throttled; retry after Retry-After",
  },
  internal_error: { status: 500, when: "an unexpected failure; nothing internal is shown" },
  unavailable: {
    status: 503,
    when: "the queue or table (or the JWT signing keys) cannot be reached; nothing was accepted",
  },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** Codes a `failed` request record's `error.code` can carry. */
export const FAILURE_REASONS = {
  model_unavailable: "the model server kept failing and no degradation level could answer",
  deadline_exceeded: "no answer by the request's deadline (also what the reconciler writes)",
  context_length_exceeded: "the model server refused the prompt as too long for its context window",
  invalid_request: "the model server refused the request as invalid",
  internal_error: "an unexpected failure in the pipeline",
} as const;
