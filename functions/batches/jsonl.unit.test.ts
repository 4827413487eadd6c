import { describe, expect, it } from "vitest";
import { validateBatchFile } from "./jsonl.ts";

const line = (custom_id: string, body: Record<string, unknown>, url = "/v1/chat/completions") =>
  JSON.stringify({ custom_id, method: "POST", url, body });
const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  messages: [{ role: "user", content }],
  ...extra,
});

describe("validateBatchFile", () => {
  it("turns valid chat lines into requests, with OpenAI's defaults and the 0-based line", () => {
    const text = [
      line("a", chat("hi", { model: "deepseek-chat", max_completion_tokens: 20, temperature: 0 })),
      "",
      line("b", {
        messages: [
          { role: "developer", content: "be brief" },
          {
            role: "user",
            content: [
              { type: "text", text: "he" },
              { type: "text", text: "llo" },
            ],
          },
        ],
      }),
      "",
    ].join("\n");
    const { lines, errors } = validateBatchFile(text, "/v1/chat/completions");
    expect(errors).toEqual([]);
    expect(lines).toEqual([
      {
        line: 0,
        custom_id: "a",
        model: "deepseek-chat",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 20,
        temperature: 0,
      },
      {
        line: 2,
        custom_id: "b",
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "hello" },
        ],
        max_tokens: 512,
        temperature: 1,
      },
    ]);
  });

  it("takes completion lines (a prompt string or a one-string array)", () => {
    const text = [
      line("p", { prompt: "Once upon", max_tokens: 8 }, "/v1/completions"),
      line("q", { prompt: ["a time"] }, "/v1/completions"),
    ].join("\n");
    const { lines, errors } = validateBatchFile(text, "/v1/completions");
    expect(errors).toEqual([]);
    expect(lines.map((l) => [l.custom_id, l.prompt, l.max_tokens])).toEqual([
      ["p", "Once upon", 8],
      ["q", "a time", 512],
    ]);
  });

  it("reports every problem with its 1-based line, code and param", () => {
    const text = [
      line("ok", chat("x")),
      "{nope",
      JSON.stringify({ custom_id: "m", method: "GET", url: "/v1/chat/completions", body: chat("x") }),
      line("u", chat("x"), "/v1/completions"),
      line("ok", chat("again")),
      line("t", chat("x", { tools: [] })),
      line("n", chat("x", { n: 2 })),
    ].join("\n");
    const { errors } = validateBatchFile(text, "/v1/chat/completions");
    expect(errors.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, "invalid_json_line", null],
      [3, "invalid_request", null],
      [4, "mismatched_url", "url"],
      [5, "duplicate_custom_id", "custom_id"],
      [6, "invalid_request", "body"],
      [7, "invalid_request", "body"],
    ]);
    expect(errors[4]!.message).toMatch(/tools/);
  });

  it("fails an empty file and one over the line limit, and stops at maxErrors", () => {
    expect(validateBatchFile("\n\n", "/v1/chat/completions").errors).toEqual([
      { code: "empty_file", message: "the input file has no lines", param: null, line: null },
    ]);
    const many = Array.from({ length: 4 }, (_, n) => line(`l${n}`, chat("x"))).join("\n");
    const over = validateBatchFile(many, "/v1/chat/completions", { maxLines: 3 });
    expect(over.errors.map((e) => [e.line, e.code])).toEqual([[4, "too_many_requests"]]);
    const bad = validateBatchFile("x\nx\nx\nx", "/v1/chat/completions", { maxErrors: 2 });
    expect(bad.errors).toHaveLength(2);
  });
});
