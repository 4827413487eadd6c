import { describe, expect, it } from "vitest";
import type { RequestRecord } from "../../events/index.ts";
import { AnswerTimeoutError, failedRequestResponse } from "./failures.ts";

const failed = (code: string): RequestRecord => ({
  id: "req_9",
  status: "failed",
  model: "m",
  created_at: "2026-11-28T09:00:00.000Z",
  error: { code, message: "why" },
});

describe("failedRequestResponse", () => {
  it.each([
    ["model_unavailable", 503, "server_error"],
    ["deadline_exceeded", 504, "server_error"],
    ["context_length_exceeded", 400, "invalid_request_error"],
    ["invalid_request", 400, "invalid_request_error"],
    ["internal_error", 500, "server_error"],
    ["something_new", 500, "server_error"],
  ])("answers %s with %i, OpenAI's type %s, and the failure code as code", (code, status, type) => {
    const out = failedRequestResponse(failed(code));
    expect(out.status).toBe(status);
    expect(out.body.error).toEqual({ message: "why (request req_9)", type, param: null, code });
  });
});

describe("AnswerTimeoutError", () => {
  it("is a 504 pointing at the request to poll", () => {
    const error = new AnswerTimeoutError("req_9");
    expect(error.status).toBe(504);
    expect(error.headers.location).toBe("/v1/requests/req_9");
    expect(error.message).toContain("GET /v1/requests/req_9");
  });
});
