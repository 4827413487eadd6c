import { describe, expect, it } from "vitest";
import type { InferenceRequest, ReplyMessage } from "../../events/index.ts";
import type { ChatStreamDelta, InferenceClient } from "../shared/inference-client.ts";
import { ModelUnavailableError, StreamInterruptedError } from "../shared/inference-errors.ts";
import { ModelCalls } from "./model-calls.ts";

const request = {
  id: "req_s",
  tenant: "acme",
  model: "deepseek-chat",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 16,
  temperature: 0.7,
  cache: false,
  prompt_tokens: 2,
  created_at: new Date().toISOString(),
  deadline_at: new Date(Date.now() + 60_000).toISOString(),
  reply: { queue_url: "https://sqs.local/reply", stream: true },
} as InferenceRequest;

/** A model server double whose chat stream yields `tokens`, then breaks with `error` when given. */
function streaming(tokens: string[], error?: Error): InferenceClient {
  async function* deltas(): AsyncGenerator<ChatStreamDelta> {
    for (const [n, content] of tokens.entries()) {
      const last = n === tokens.length - 1 && !error;
      yield {
        index: 0,
        content,
        finish_reason: last ? "stop" : null,
        ...(last
          ? { usage: { prompt_tokens: 2, completion_tokens: tokens.length, total_tokens: 2 + tokens.length } }
          : {}),
      };
    }
    if (error) throw error;
  }
  return { chatStream: () => deltas() } as unknown as InferenceClient;
}

function calls(inference: InferenceClient) {
  const sent: ReplyMessage[] = [];
  const models = new ModelCalls({
    inference,
    maxInFlight: 4,
    replyIntervalMs: 100,
    replies: {
      reply: async (queueUrl, message) => {
        expect(queueUrl).toBe("https://sqs.local/reply");
        sent.push(message);
        return true;
      },
    },
  });
  return { models, sent };
}

describe("ModelCalls.stream", () => {
  it("forwards the text as deltas and returns the whole answer with the server's usage", async () => {
    const { models, sent } = calls(streaming(["Hel", "lo", " there"]));
    const answer = await models.stream({ request });
    expect(answer).toEqual({
      text: "Hello there",
      finish_reason: "stop",
      usage: { prompt_tokens: 2, completion_tokens: 3 },
    });
    expect(sent.map((m) => (m.type === "delta" ? m.text : "")).join("")).toBe("Hello there");
  });

  it("a break after a delta was sent is a StreamInterruptedError (not retried, not degraded)", async () => {
    const { models, sent } = calls(streaming(["partial"], new ModelUnavailableError("the stream broke")));
    const error = await models.stream({ request }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamInterruptedError);
    expect((error as StreamInterruptedError).retryable).toBe(false);
    expect((error as StreamInterruptedError).failureCode).toBe("model_unavailable");
    expect(sent).toHaveLength(1);
  });

  it("a failure before any text keeps its own (retryable) error", async () => {
    const broken = new ModelUnavailableError("503");
    const { models, sent } = calls(streaming([], broken));
    expect(await models.stream({ request }).catch((e: unknown) => e)).toBe(broken);
    expect(sent).toHaveLength(0);
  });
});

describe("ModelCalls.completions", () => {
  it("gives each prompt of an array its own usage: max_tokens when cut there, else the answer's counted tokens", async () => {
    const plain = { ...request, messages: undefined, reply: undefined, max_tokens: 5 };
    const items = [
      { request: { ...plain, id: "req_a", prompt: "one", prompt_tokens: 2 } },
      { request: { ...plain, id: "req_b", prompt: "two", prompt_tokens: 3 } },
    ] as Array<{ request: InferenceRequest }>;
    const inference = {
      completions: async () => ({
        id: "cmpl",
        model: "deepseek-chat",
        choices: [
          // Cut at max_tokens: the server generated 5 tokens, whatever the text re-tokenizes to.
          { index: 0, text: "a b c d e f g h", finish_reason: "length" },
          { index: 1, text: "Hello there", finish_reason: "stop" },
        ],
        usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
      }),
    } as unknown as InferenceClient;
    const { models } = calls(inference);
    const [a, b] = await models.completions(items, "deepseek-chat");
    expect(a?.usage).toEqual({ prompt_tokens: 2, completion_tokens: 5 });
    expect(b?.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2 });
  });
});
