import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "../shared/errors.ts";
import { openAiError } from "./errors.ts";

describe("openAiError", () => {
  it("keeps status and message, names OpenAI's type and our code, and the field at fault", () => {
    const out = openAiError(new InvalidRequestError("max_tokens: too big"), "max_tokens");
    expect(out.status).toBe(400);
    expect(out.body).toEqual({
      error: {
        message: "max_tokens: too big",
        type: "invalid_request_error",
        param: "max_tokens",
        code: "invalid_request",
      },
    });
  });

  it("hides an unexpected error behind a 500 server_error", () => {
    const out = openAiError(new Error("secret internals"));
    expect(out.status).toBe(500);
    expect(out.body.error).toMatchObject({ type: "server_error", code: "internal_error" });
    expect(JSON.stringify(out.body)).not.toContain("secret");
  });
});
