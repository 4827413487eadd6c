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
} from "../../functions/shared/inference-client.ts";
import type { FailureType } from "./options.ts";
import { type Simulator, startSimulator } from "./server.ts";

// Every failure the simulator injects, seen through the inference client:
// retryable ones are retried (and succeed when the failure passes), a model
// that stays down opens the breaker, permanent errors surface at once.

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator({ port: 0, timeScale: 0, retryAfterSeconds: 0, slowResponseMs: 5_000 });
});
afterAll(() => sim.stop());
beforeEach(() => {
  sim.setConfig({ failureRate: 0, failNext: 0, down: false, unavailableModels: [] });
  sim.resetStats();
});

const client = (overrides: Partial<InferenceClientOptions> = {}) =>
  createInferenceClient({ baseUrl: sim.url, backoffFactorMs: 1, timeoutMs: 1_000, ...overrides });
const request = { model: "deepseek-chat", prompt: ["first", "second"], max_tokens: 8 };

describe("failure injection through the inference client", () => {
  const retried: Array<[FailureType, new (...args: never[]) => Error]> = [
    ["rate_limit", ModelRateLimitedError],
    ["server_error", ModelUnavailableError],
    ["unavailable", ModelUnavailableError],
    ["timeout", InferenceTimeoutError],
    ["dropped", ModelUnavailableError],
  ];

  it.each(retried)("%s: retried, and the call succeeds once the failure passes", async (type, errorClass) => {
    sim.setConfig({ failureTypes: [type], failNext: 2 });
    const errors: unknown[] = [];
    // Only the timeout case needs a short timeout; the others get room for a loaded machine (a first
    // call here once took over 500 ms while the rest of the suite ran beside it).
    const timeoutMs = type === "timeout" ? 500 : 5_000;
    const result = await client({ timeoutMs, onRetry: (r) => errors.push(r.error) }).completions(request);
    expect(result.choices).toHaveLength(2);
    expect(errors).toHaveLength(2);
    for (const error of errors) expect(error).toBeInstanceOf(errorClass);
    expect(sim.stats().failuresInjected[type]).toBe(2);
    expect(sim.stats().succeeded).toBe(1);
  });

  it.each(retried)("%s: surfaces typed after the retries run out", async (type, errorClass) => {
    sim.setConfig({ failureTypes: [type], failureRate: 1 });
    const error = await client({ retries: 1, timeoutMs: 300 })
      .completions(request)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(errorClass);
    expect(sim.stats().requests).toBe(2);
  });

  it("a model taken away opens the breaker; brought back, calls succeed again", async () => {
    const c = client({ retries: 1, breakerThreshold: 4, breakerHalfOpenAfterMs: 200 });
    sim.setConfig({ down: true });
    await expect(c.completions(request)).rejects.toBeInstanceOf(ModelUnavailableError);
    await expect(c.completions(request)).rejects.toBeInstanceOf(ModelUnavailableError);
    expect(c.breakerState()).toBe("open");
    const seen = sim.stats().requests;
    // Open: the call fails at once, and the simulator never sees it.
    await expect(c.completions(request)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(sim.stats().requests).toBe(seen);

    sim.setConfig({ down: false });
    await new Promise((r) => setTimeout(r, 250));
    const result = await c.completions(request);
    expect(result.choices).toHaveLength(2);
    expect(c.breakerState()).toBe("closed");
  });

  it("one model down leaves the other serving (the fallback model)", async () => {
    sim.setConfig({ unavailableModels: ["deepseek-chat"] });
    const c = client({ retries: 0 });
    await expect(c.completions(request)).rejects.toBeInstanceOf(ModelUnavailableError);
    const fallback = await c.completions({ ...request, model: "deepseek-chat-small" });
    expect(fallback.model).toBe("deepseek-chat-small");
  });

  it("a context-length error surfaces at once, not retried and not counted by the breaker", async () => {
    const c = client({ breakerThreshold: 1 });
    const error = await c
      .completions({ model: "deepseek-chat", prompt: "hello", max_tokens: 5000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContextLengthError);
    expect(error).toMatchObject({ maxModelLen: 4096, retryable: false });
    expect(sim.stats().requests).toBe(1);
    expect(c.breakerState()).toBe("closed");
  });

  it("an unknown model surfaces as a permanent InvalidModelRequestError", async () => {
    const error = await client()
      .completions({ ...request, model: "no-such-model" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidModelRequestError);
    expect(sim.stats().requests).toBe(1);
  });

  it("counts every call and its prompts in /sim/stats (what batcher tests assert on)", async () => {
    const c = client();
    await Promise.all(Array.from({ length: 10 }, () => c.completions({ ...request, prompt: "same" })));
    expect(sim.stats().completionCalls).toBe(10);
    expect(sim.stats().promptsPerCall).toEqual(Array(10).fill(1));
  });

  it("streams chat through the client, the text equal to the non-streamed answer", async () => {
    const c = client();
    const chat = {
      model: "deepseek-chat",
      messages: [{ role: "user" as const, content: "Hi" }],
      max_tokens: 50,
    };
    const whole = await c.chat(chat);
    let text = "";
    let last: { finish_reason: string | null; usage?: { completion_tokens: number } | undefined } | undefined;
    for await (const delta of c.chatStream(chat)) {
      text += delta.content;
      last = delta;
    }
    expect(text).toBe(whole.text);
    expect(last?.finish_reason).toBe(whole.finish_reason);
    expect(last?.usage?.completion_tokens).toBe(whole.usage.completion_tokens);
  });

  it("retries a stream that could not open", async () => {
    sim.setConfig({ failureTypes: ["unavailable"], failNext: 1 });
    const chat = {
      model: "deepseek-chat",
      messages: [{ role: "user" as const, content: "Hi" }],
      max_tokens: 5,
    };
    let text = "";
    for await (const delta of client().chatStream(chat)) text += delta.content;
    expect(text.length).toBeGreaterThan(0);
    expect(sim.stats().chatCalls).toBe(2);
  });

  it("checks the bearer key when started with apiKey, as vLLM --api-key does", async () => {
    const guarded = await startSimulator({ port: 0, timeScale: 0, apiKey: "sk-sim" });
    try {
      const ok = await createInferenceClient({ baseUrl: guarded.url, apiKey: "sk-sim" }).completions(request);
      expect(ok.choices).toHaveLength(2);
      const error = await createInferenceClient({ baseUrl: guarded.url, apiKey: "wrong" })
        .completions(request)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidModelRequestError);
      expect((error as InvalidModelRequestError).status).toBe(401);
    } finally {
      await guarded.stop();
    }
  });

  it("frees the slots of a call its client abandons, and counts it as aborted", async () => {
    sim.setConfig({ timeScale: 1 });
    try {
      const controller = new AbortController();
      const pending = client()
        .completions({ ...request, max_tokens: 500 }, { signal: controller.signal })
        .catch((e: unknown) => e);
      await expect.poll(() => sim.stats().maxRunning, { timeout: 5_000, interval: 5 }).toBeGreaterThan(0);
      controller.abort();
      await pending;
      await expect.poll(() => sim.stats().calls[0]?.status, { timeout: 5_000, interval: 5 }).toBe(499);
      const metrics = await (await fetch(sim.url.replace(/\/v1$/, "/metrics"))).text();
      expect(metrics).toMatch(/vllm:num_requests_running\{model_name="deepseek-chat"\} 0/);
      expect(metrics).toMatch(
        /vllm:request_success_total\{model_name="deepseek-chat",finished_reason="abort"\} 2/,
      );
    } finally {
      sim.setConfig({ timeScale: 0 });
    }
  });

  it("holds at most maxConcurrency calls in flight", async () => {
    sim.setConfig({ timeScale: 0.05 });
    try {
      const send = (c: ReturnType<typeof client>) =>
        Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            c.completions({ ...request, prompt: `p${i}`, max_tokens: 200 }),
          ),
        );
      await send(client({ maxConcurrency: 2 }));
      expect(sim.stats().maxRunning).toBe(2);
      expect(sim.stats().succeeded).toBe(6);
      sim.resetStats();
      await send(client());
      expect(sim.stats().maxRunning).toBeGreaterThan(2);
    } finally {
      sim.setConfig({ timeScale: 0 });
    }
  });
});
