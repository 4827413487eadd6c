import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  CircuitOpenError,
  ContextLengthError,
  createInferenceClient,
  type InferenceClientOptions,
  InferenceTimeoutError,
  InvalidModelRequestError,
  ModelRateLimitedError,
  ModelUnavailableError,
  parseRetryAfter,
} from "./inference-client.ts";
import { publicFailureMessage } from "./inference-errors.ts";

// A tiny server that answers with the DeepSeek API's documented bodies (fixtures/deepseek/):
// the client must parse them unchanged. Each test queues the answers it wants.
const fixture = (name: string) =>
  readFileSync(new URL(`./fixtures/deepseek/${name}`, import.meta.url), "utf8");

interface Answer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** Never answer (for timeouts). */
  hang?: boolean;
  /** Send the headers and `body`, then stall (`"hang"`) or cut the connection (`"destroy"`). */
  partial?: "hang" | "destroy";
}
interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
  traceparent?: string | undefined;
  body: Record<string, unknown>;
}

let server: Server;
let baseUrl: string;
let answers: Answer[] = [];
let fallback: Answer = { status: 500, body: "{}" };
let seen: Seen[] = [];
const hanging = new Set<ServerResponse>();

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let text = "";
  for await (const chunk of req) text += chunk;
  seen.push({
    method: req.method ?? "",
    path: req.url ?? "",
    authorization: req.headers.authorization,
    traceparent: req.headers.traceparent as string | undefined,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  });
  const answer = answers.shift() ?? fallback;
  if (answer.hang) {
    hanging.add(res);
    return;
  }
  res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
  if (answer.partial) {
    res.write(answer.body ?? "");
    if (answer.partial === "destroy") setTimeout(() => res.destroy(), 20);
    else hanging.add(res);
    return;
  }
  res.end(answer.body ?? "");
}

beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
});
beforeEach(() => {
  answers = [];
  fallback = { status: 500, body: "{}" };
  seen = [];
});

/** Fast retries so tests do not wait seconds; the logic is the same. */
const client = (overrides: Partial<InferenceClientOptions> = {}) =>
  createInferenceClient({ baseUrl, apiKey: "sk-test", backoffFactorMs: 1, timeoutMs: 2_000, ...overrides });
const messages = [{ role: "user" as const, content: "Hi" }];

describe("inference client against the DeepSeek API format", () => {
  it("parses a chat completion with DeepSeek's usage fields and sends a clean OpenAI body", async () => {
    answers = [{ status: 200, body: fixture("chat-completion.json") }];
    const result = await client().chat({
      model: "deepseek-chat",
      messages,
      max_tokens: 512,
      temperature: 0.7,
    });
    expect(result).toEqual({
      id: "b55e6172-d379-4806-b4e0-d21dd4b243b7",
      model: "deepseek-chat",
      text: "Hello! How can I assist you today?",
      finish_reason: "stop",
      usage: {
        prompt_tokens: 14,
        completion_tokens: 9,
        total_tokens: 23,
        prompt_cache_hit_tokens: 0,
        prompt_cache_miss_tokens: 14,
      },
      system_fingerprint: "fp_feb633d1f5_prod0820_fp8_kvcache",
    });
    expect(seen[0]).toEqual({
      method: "POST",
      path: "/chat/completions",
      authorization: "Bearer sk-test",
      body: { model: "deepseek-chat", messages, max_tokens: 512, temperature: 0.7 },
    });
  });

  it("sends a traceparent header when the call names one, and none otherwise", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    answers = [
      { status: 200, body: fixture("chat-completion.json") },
      { status: 200, body: fixture("fim-completion.json") },
      { status: 200, body: fixture("chat-completion.json") },
    ];
    await client().chat({ model: "deepseek-chat", messages }, { traceparent });
    await client().completions({ model: "deepseek-chat", prompt: "def fib(n):" }, { traceparent });
    await client().chat({ model: "deepseek-chat", messages });
    expect(seen.map((s) => s.traceparent)).toEqual([traceparent, traceparent, undefined]);
  });

  it("keeps deepseek-reasoner's reasoning_content apart from the answer", async () => {
    answers = [{ status: 200, body: fixture("chat-completion-reasoner.json") }];
    const result = await client().chat({ model: "deepseek-reasoner", messages });
    expect(result.text).toBe("9.11 is smaller than 9.8.");
    expect(result.reasoning_content).toContain("tenths");
  });

  it("parses a DeepSeek stream: keep-alive comments, role:null deltas, usage on the last chunk", async () => {
    answers = [
      {
        status: 200,
        body: fixture("chat-completion-stream.txt"),
        headers: { "content-type": "text/event-stream" },
      },
    ];
    const deltas = [];
    for await (const delta of client().chatStream({ model: "deepseek-chat", messages })) deltas.push(delta);
    expect(deltas.map((d) => d.content).join("")).toBe("Hello! How can I assist you today?");
    expect(deltas.at(-1)).toMatchObject({
      finish_reason: "stop",
      usage: { prompt_tokens: 17, completion_tokens: 9, total_tokens: 26, prompt_cache_miss_tokens: 17 },
    });
    expect(deltas.slice(0, -1).every((d) => d.finish_reason === null)).toBe(true);
    expect(seen[0]?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it("parses a text completion (DeepSeek FIM) and returns choices in prompt order", async () => {
    answers = [{ status: 200, body: fixture("fim-completion.json") }];
    const fim = await client({ baseUrl: `${baseUrl}/beta` }).completions({
      model: "deepseek-chat",
      prompt: "def fib(n):",
    });
    expect(fim.choices[0]?.text).toContain("fib(n - 1)");
    expect(fim.usage.prompt_cache_miss_tokens).toBe(12);
    expect(seen[0]?.path).toBe("/beta/completions");

    // A server may list choices in any order; the client returns them by index = prompt order.
    const shuffled = {
      id: "cmpl-1",
      model: "m",
      choices: [
        { index: 1, text: "second", finish_reason: "length" },
        { index: 0, text: "first", finish_reason: "stop" },
      ],
      usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
    };
    answers = [{ status: 200, body: JSON.stringify(shuffled) }];
    const batch = await client().completions({ model: "m", prompt: ["a", "b"] });
    expect(batch.choices.map((c) => [c.text, c.finish_reason])).toEqual([
      ["first", "stop"],
      ["second", "length"],
    ]);
  });

  it("refuses an answer whose choices do not match the prompts", async () => {
    answers = [
      { status: 200, body: JSON.stringify({ id: "x", model: "m", choices: [{ index: 0, text: "only" }] }) },
    ];
    await expect(client({ retries: 0 }).completions({ model: "m", prompt: ["a", "b"] })).rejects.toThrow(
      /1 choices for 2 prompts/,
    );
  });
});

describe("inference client errors", () => {
  it("surfaces the context-length 400 as ContextLengthError, without retrying", async () => {
    answers = [{ status: 400, body: fixture("error-context-length.json") }];
    const error = await client()
      .chat({ model: "deepseek-chat", messages })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContextLengthError);
    expect(error).toMatchObject({ maxModelLen: 65536, requestedTokens: 70000, retryable: false });
    expect((error as ContextLengthError).failureCode).toBe("context_length_exceeded");
    expect(seen).toHaveLength(1);
  });

  it("surfaces other 4xx (402 insufficient balance) as permanent, without retrying", async () => {
    answers = [{ status: 402, body: fixture("error-insufficient-balance.json") }];
    const error = await client()
      .chat({ model: "deepseek-chat", messages })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidModelRequestError);
    expect((error as Error).message).toContain("Insufficient Balance");
    expect(seen).toHaveLength(1);
  });

  it("retries 429 after the server's Retry-After, then succeeds", async () => {
    const delays: number[] = [];
    answers = [
      { status: 429, body: fixture("error-rate-limit.json"), headers: { "retry-after": "0.05" } },
      { status: 200, body: fixture("chat-completion.json") },
    ];
    const result = await client({ onRetry: (r) => delays.push(r.delayMs) }).chat({
      model: "deepseek-chat",
      messages,
    });
    expect(result.text).toContain("Hello");
    expect(delays).toEqual([50]);
    expect(seen).toHaveLength(2);
  });

  it("gives up after `retries` retries with the last error", async () => {
    fallback = { status: 429, body: fixture("error-rate-limit.json"), headers: { "retry-after": "0" } };
    const error = await client({ retries: 2 })
      .chat({ model: "deepseek-chat", messages })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelRateLimitedError);
    expect(seen).toHaveLength(3);
  });

  it("backs off exponentially with jitter when there is no Retry-After", async () => {
    const delays: number[] = [];
    fallback = { status: 503, body: "" };
    await client({ retries: 3, backoffFactorMs: 8, random: () => 1, onRetry: (r) => delays.push(r.delayMs) })
      .chat({ model: "deepseek-chat", messages })
      .catch(() => undefined);
    expect(delays).toEqual([8, 16, 32]);
    delays.length = 0;
    await client({ retries: 2, backoffFactorMs: 8, random: () => 0, onRetry: (r) => delays.push(r.delayMs) })
      .chat({ model: "deepseek-chat", messages })
      .catch(() => undefined);
    expect(delays).toEqual([4, 8]);
  });

  it("times out an attempt that does not answer, and retries it", async () => {
    answers = [
      { status: 0, hang: true },
      { status: 200, body: fixture("chat-completion.json") },
    ];
    const result = await client({ timeoutMs: 150 }).chat({ model: "deepseek-chat", messages });
    expect(result.text).toContain("Hello");
    expect(seen).toHaveLength(2);

    answers = [{ status: 0, hang: true }];
    const error = await client({ timeoutMs: 100, retries: 0 })
      .chat({ model: "deepseek-chat", messages })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceTimeoutError);
  });

  it("times out a stream that stalls between events, and surfaces a broken stream without retrying", async () => {
    const firstEvent = fixture("chat-completion-stream.txt").split("\n\n").slice(0, 3).join("\n\n");
    const sse = { "content-type": "text/event-stream" };
    const read = async (c: ReturnType<typeof client>) => {
      let text = "";
      for await (const d of c.chatStream({ model: "deepseek-chat", messages })) text += d.content;
      return text;
    };
    answers = [{ status: 200, body: `${firstEvent}\n\n`, headers: sse, partial: "hang" }];
    await expect(read(client({ timeoutMs: 150 }))).rejects.toBeInstanceOf(InferenceTimeoutError);
    expect(seen).toHaveLength(1);

    answers = [{ status: 200, body: `${firstEvent}\n\n`, headers: sse, partial: "destroy" }];
    await expect(read(client())).rejects.toBeInstanceOf(ModelUnavailableError);
    expect(seen).toHaveLength(2);
  });

  it("opens the breaker after consecutive failures, then fails fast without calling", async () => {
    fallback = { status: 500, body: '{"error":{"message":"boom"}}' };
    const c = client({ retries: 0, breakerThreshold: 3, breakerHalfOpenAfterMs: 60_000 });
    const states: string[] = [];
    c.onBreakerStateChange((s) => states.push(s));
    for (let i = 0; i < 3; i++) {
      await expect(c.chat({ model: "m", messages })).rejects.toBeInstanceOf(ModelUnavailableError);
    }
    expect(c.breakerState()).toBe("open");
    expect(states).toEqual(["open"]);
    const calls = seen.length;
    const error = await c.chat({ model: "m", messages }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect((error as CircuitOpenError).failureCode).toBe("model_unavailable");
    expect(seen.length).toBe(calls);
  });

  it("does not count permanent errors toward the breaker", async () => {
    fallback = { status: 400, body: '{"error":{"message":"bad temperature"}}' };
    const c = client({ retries: 0, breakerThreshold: 2 });
    for (let i = 0; i < 4; i++) await c.chat({ model: "m", messages }).catch(() => undefined);
    expect(c.breakerState()).toBe("closed");
  });

  it("maps a refused connection to ModelUnavailableError", async () => {
    const error = await createInferenceClient({ baseUrl: "http://127.0.0.1:1/v1", retries: 0 })
      .chat({ model: "m", messages })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelUnavailableError);
  });

  it("parses Retry-After as seconds or a date", () => {
    expect(parseRetryAfter("2")).toBe(2000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
  });
});

describe("publicFailureMessage", () => {
  it("never carries the model server's text or address; keeps the context-length numbers", () => {
    const unreachable = new ModelUnavailableError(
      "cannot reach the model server at http://10.0.3.4:8000/v1: ECONNREFUSED",
    );
    expect(publicFailureMessage(unreachable)).toBe("the model server is unavailable");
    expect(publicFailureMessage(unreachable, "deadline_exceeded")).toBe("no answer before the deadline");
    expect(publicFailureMessage(new Error("/models/deepseek on node-7 crashed"))).toBe("internal error");
    const tooLong = new ContextLengthError(
      "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4800 in the messages, 200 in the completion).",
    );
    expect(publicFailureMessage(tooLong)).toBe(
      "the prompt and max_tokens (5000 tokens) do not fit the model's 4096-token context window",
    );
  });
});
