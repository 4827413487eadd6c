import { describe, expect, it } from "vitest";
import { InvalidParamError } from "./errors.ts";
import { mapChatBody, mapCompletionBody } from "./request-body.ts";

const chat = (body: Record<string, unknown>) =>
  mapChatBody(
    JSON.stringify({ model: "deepseek-chat", messages: [{ role: "user", content: "Hi" }], ...body }),
    {
      deadlineSeconds: 120,
    },
  );

function refusal(fn: () => unknown): InvalidParamError {
  try {
    fn();
  } catch (error) {
    if (error instanceof InvalidParamError) return error;
    throw error;
  }
  throw new Error("not refused");
}

describe("mapChatBody", () => {
  it("maps OpenAI's chat body onto a submission", () => {
    const mapped = chat({
      messages: [
        { role: "developer", content: "Be brief." },
        {
          role: "user",
          content: [
            { type: "text", text: "one" },
            { type: "text", text: "two" },
          ],
          name: "ann",
        },
      ],
      max_completion_tokens: 64,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      user: "u-1",
      metadata: { job: "7" },
      top_p: 0.9,
      seed: 3,
      n: 1,
    });
    expect(mapped).toEqual({
      submit: {
        model: "deepseek-chat",
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "one\ntwo" },
        ],
        max_tokens: 64,
        temperature: 0,
        metadata: { user: "u-1", job: "7" },
        deadline_seconds: 120,
      },
      stream: true,
      includeUsage: true,
    });
  });

  it("takes max_tokens when max_completion_tokens is absent, and leaves the API's defaults otherwise", () => {
    expect(chat({ max_tokens: 9 }).submit.max_tokens).toBe(9);
    expect(chat({}).submit).not.toHaveProperty("max_tokens");
    expect(chat({}).submit).not.toHaveProperty("temperature");
    expect(chat({}).stream).toBe(false);
  });

  it.each([
    [{ n: 2 }, "n"],
    [{ tools: [{ type: "function", function: { name: "f" } }] }, "tools"],
    [{ logprobs: true }, "logprobs"],
    [{ stop: ["\n"] }, "stop"],
    [{ response_format: { type: "json_object" } }, "response_format"],
    [{ frequency_penalty: 0.5 }, "frequency_penalty"],
    [{ messages: [{ role: "tool", content: "x", tool_call_id: "1" }] }, "messages.0.role"],
    [
      { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] },
      "messages.0.content",
    ],
    [{ bogus: 1 }, "bogus"],
    [{ max_completion_tokens: 999_999 }, "max_completion_tokens"],
    [{ temperature: 3 }, "temperature"],
  ])("refuses %j with a 400 naming %s", (body, param) => {
    const error = refusal(() => chat(body));
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
  });

  it("names an unknown argument as OpenAI does", () => {
    expect(refusal(() => chat({ bogus: 1 })).message).toBe("Unrecognized request argument supplied: bogus");
  });

  it("refuses a body that is not a JSON object", () => {
    expect(() => mapChatBody("not json", { deadlineSeconds: 120 })).toThrow(/JSON/);
    expect(() => mapChatBody("[1]", { deadlineSeconds: 120 })).toThrow(/JSON object/);
  });
});

describe("mapCompletionBody", () => {
  const options = { deadlineSeconds: 120, maxTokens: 16 };
  it("maps a prompt (or an array of one) with the completions default of max_tokens", () => {
    const body = { model: "deepseek-chat", prompt: ["Say hi"] };
    expect(mapCompletionBody(JSON.stringify(body), options).submit).toEqual({
      model: "deepseek-chat",
      prompt: "Say hi",
      max_tokens: 16,
      deadline_seconds: 120,
    });
  });

  it.each([
    [{ prompt: ["a", "b"] }, "prompt"],
    [{ prompt: "a", echo: true }, "echo"],
    [{ prompt: "a", best_of: 2 }, "best_of"],
    [{ prompt: "a", suffix: "z" }, "suffix"],
    [{ prompt: "" }, "prompt"],
  ])("refuses %j naming %s", (body, param) => {
    expect(refusal(() => mapCompletionBody(JSON.stringify({ model: "m", ...body }), options)).param).toBe(
      param,
    );
  });
});
