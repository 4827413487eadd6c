import { describe, expect, it } from "vitest";
import type { RequestRecord } from "../../events/index.ts";
import { completionBody, SSE_DONE, StreamChunks } from "./responses.ts";

const record = (text: string, source: "model" | "cache" = "model"): RequestRecord => ({
  id: "req_1",
  status: "completed",
  model: "deepseek-chat",
  created_at: "2026-11-28T09:00:00.000Z",
  completed_at: "2026-11-28T09:00:01.000Z",
  result: { text, finish_reason: "length", usage: { prompt_tokens: 5, completion_tokens: 3 }, source },
});

/** The JSON payloads of an SSE text, `[DONE]` as is. */
function events(sse: string): unknown[] {
  return sse
    .split("\n\n")
    .filter(Boolean)
    .map((e) => e.replace(/^data: /, ""))
    .map((d) => (d === "[DONE]" ? d : JSON.parse(d)));
}

/** The fields of a chunk these tests read. */
interface Chunk {
  object: string;
  usage?: unknown;
  choices: Array<{ delta?: Record<string, string>; text?: string; finish_reason: string | null }>;
}

const head = { id: "req_1", model: "deepseek-chat", created: 1_795_856_400 };

describe("completionBody", () => {
  it("is a chat.completion with the request id, text, finish reason and usage", () => {
    expect(completionBody("chat", record("Hello"))).toEqual({
      id: "req_1",
      object: "chat.completion",
      created: 1_795_856_400,
      model: "deepseek-chat",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: "Hello", refusal: null },
          logprobs: null,
          finish_reason: "length",
        },
      ],
      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
    });
  });

  it("is a text_completion for /v1/completions", () => {
    const body = completionBody("text", record("Hi"));
    expect(body.object).toBe("text_completion");
    expect(body.choices[0]).toEqual({ index: 0, text: "Hi", logprobs: null, finish_reason: "length" });
  });
});

describe("StreamChunks", () => {
  it("streams chat: the role first, each delta, the rest of the final text, the finish, the usage, [DONE]", () => {
    const chunks = new StreamChunks("chat", head, { includeUsage: true });
    const sse =
      chunks.start() + chunks.delta("Hel") + chunks.delta("") + chunks.finish(record("Hello world"));
    const all = events(sse);
    expect(all.at(-1)).toBe("[DONE]");
    expect(sse.endsWith(SSE_DONE)).toBe(true);
    const json = all.slice(0, -1) as Chunk[];
    expect(json.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(json.map((c) => c.choices[0]?.delta)).toEqual([
      { role: "assistant", content: "" },
      { content: "Hel" },
      { content: "lo world" },
      {},
      undefined,
    ]);
    expect(json[3]!.choices[0]!.finish_reason).toBe("length");
    expect(json.slice(0, 4).every((c) => c.usage === null)).toBe(true);
    expect(json[4]).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
    });
  });

  it("sends a cache hit's whole text as one delta, and no usage chunk unless asked", () => {
    const chunks = new StreamChunks("chat", head, { includeUsage: false });
    const json = events(chunks.start() + chunks.finish(record("cached answer", "cache"))) as Chunk[];
    expect(json.map((c) => c.choices?.[0]?.delta?.content)).toEqual([
      "",
      "cached answer",
      undefined,
      undefined,
    ]);
    expect(json[1]).not.toHaveProperty("usage");
  });

  it("tells when the text sent is not the start of the final text (an answer made again)", () => {
    const chunks = new StreamChunks("chat", head, { includeUsage: false });
    chunks.delta("abandoned");
    expect(chunks.contradicts(record("fallback text"))).toBe(true);
    expect(chunks.contradicts(record("abandoned, then more"))).toBe(false);
  });

  it("streams text completions with text in each choice and no role chunk", () => {
    const chunks = new StreamChunks("text", head, { includeUsage: false });
    expect(chunks.start()).toBe("");
    const json = events(chunks.delta("Hi") + chunks.finish(record("Hi there"))) as Chunk[];
    expect(json.slice(0, 3).map((c) => [c.object, c.choices[0]!.text, c.choices[0]!.finish_reason])).toEqual([
      ["text_completion", "Hi", null],
      ["text_completion", " there", null],
      ["text_completion", "", "length"],
    ]);
  });
});
