import { createParser, type EventSourceMessage } from "eventsource-parser";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { countTokens } from "../../functions/shared/tokenizer.ts";
import { VLLM_METRICS } from "../../functions/shared/vllm-metrics.ts";
import { type Simulator, startSimulator } from "./server.ts";

let sim: Simulator;
let root: string;

beforeAll(async () => {
  sim = await startSimulator({ port: 0, timeScale: 0.02 });
  root = sim.url.replace(/\/v1$/, "");
});
afterAll(() => sim.stop());
beforeEach(() => sim.resetStats());

const post = (path: string, body: unknown) =>
  fetch(`${sim.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

interface CompletionBody {
  choices: Array<{ index: number; text: string; finish_reason: string }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** Reads a whole SSE body with eventsource-parser, the parser the OpenAI SDKs' family uses. */
async function readEvents(response: Response): Promise<EventSourceMessage[]> {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => events.push(e) });
  parser.feed(await response.text());
  return events;
}

async function metricValue(name: string): Promise<number> {
  const text = await (await fetch(`${root}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`));
  return line ? Number(line.split(" ").at(-1)) : Number.NaN;
}

describe("simulator API", () => {
  it("lists its models and answers health", async () => {
    const models = (await (await fetch(`${sim.url}/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(["deepseek-chat", "deepseek-chat-small"]);
    expect((await fetch(`${root}/health`)).status).toBe(200);
  });

  it("answers a prompt array with one choice per prompt, in order, as vLLM does", async () => {
    const prompts = ["What is a queue?", "Name a colour.", "Count to three.", "What is a queue?"];
    const response = await post("/completions", { model: "deepseek-chat", prompt: prompts, max_tokens: 300 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as CompletionBody;
    expect(body.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    // Each choice is the answer to its own prompt: the same as asking for it alone.
    for (const [i, prompt] of prompts.entries()) {
      const single = (await (
        await post("/completions", { model: "deepseek-chat", prompt, max_tokens: 300 })
      ).json()) as CompletionBody;
      expect(body.choices[i]?.text).toBe(single.choices[0]?.text);
    }
    expect(body.choices[0]?.text).toBe(body.choices[3]?.text);
    expect(body.choices[0]?.text).not.toBe(body.choices[1]?.text);
    // Usage: the real tokenizer's counts (BOS + prompt), summed over the prompts.
    const promptTokens = prompts.reduce((sum, p) => sum + countTokens(p) + 1, 0);
    const completionTokens = body.choices.reduce((sum, c) => sum + countTokens(c.text), 0);
    expect(body.usage).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    });
    expect(sim.stats().promptsPerCall).toEqual([4, 1, 1, 1, 1]);
    expect(sim.stats().completionCalls).toBe(5);
  });

  it("cuts at max_tokens with finish_reason length, and defaults max_tokens to 16 like vLLM", async () => {
    const body = (await (
      await post("/completions", { model: "deepseek-chat", prompt: "Tell me everything.", max_tokens: 3 })
    ).json()) as CompletionBody;
    expect(body.choices[0]?.finish_reason).toBe("length");
    expect(body.usage.completion_tokens).toBe(3);
    const defaults = (await (
      await post("/completions", { model: "deepseek-chat", prompt: "Tell me everything, at length." })
    ).json()) as CompletionBody;
    expect(defaults.usage.completion_tokens).toBeLessThanOrEqual(16);
  });

  it("streams chat as SSE that a standard parser reads, ending in [DONE]", async () => {
    const request = {
      model: "deepseek-chat",
      messages: [{ role: "user", content: "Say something." }],
      max_tokens: 300,
      seed: 3,
    };
    const whole = (await (await post("/chat/completions", request)).json()) as {
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    const response = await post("/chat/completions", {
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const events = await readEvents(response);
    expect(events.at(-1)?.data).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(whole.choices[0]?.message.content);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish.choices[0].finish_reason).toBe(whole.choices[0]?.finish_reason);
    expect(chunks.at(-1).usage.completion_tokens).toBe(whole.usage.completion_tokens);
  });

  it("streams completions for a prompt array, each event tagged with its prompt's index", async () => {
    const response = await post("/completions", {
      model: "deepseek-chat",
      prompt: ["one", "two"],
      max_tokens: 5,
      stream: true,
    });
    const events = await readEvents(response);
    expect(events.at(-1)?.data).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    const texts = [0, 1].map((i) =>
      chunks
        .flatMap((c) => c.choices)
        .filter((c: { index: number }) => c.index === i)
        .map((c: { text: string }) => c.text)
        .join(""),
    );
    const batch = (await (
      await post("/completions", { model: "deepseek-chat", prompt: ["one", "two"], max_tokens: 5 })
    ).json()) as CompletionBody;
    expect(texts).toEqual(batch.choices.map((c) => c.text));
  });

  it("refuses prompt + max_tokens beyond --max-model-len with vLLM's 400", async () => {
    const response = await post("/chat/completions", {
      model: "deepseek-chat",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 5000,
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string; type: string; code: number } };
    expect(body.error.type).toBe("BadRequestError");
    expect(body.error.code).toBe(400);
    expect(body.error.message).toBe(
      "This model's maximum context length is 4096 tokens. However, you requested 5004 tokens " +
        "(4 in the messages, 5000 in the completion). Please reduce the length of the messages or completion.",
    );
    expect(sim.stats().contextLengthErrors).toBe(1);
  });

  it("answers an unknown model with 404 and bad bodies with 400", async () => {
    expect((await post("/completions", { model: "gpt-4", prompt: "x" })).status).toBe(404);
    expect((await post("/completions", { model: "deepseek-chat" })).status).toBe(400);
    const bad = await fetch(`${sim.url}/completions`, { method: "POST", body: "{not json" });
    expect(bad.status).toBe(400);
    expect(sim.stats().invalidRequests).toBe(3);
  });

  it("exports vLLM's metric names, and they move with load", async () => {
    const text = await (await fetch(`${root}/metrics`)).text();
    for (const name of Object.values(VLLM_METRICS)) expect(text).toContain(`# TYPE ${name} `);
    expect(text).toContain('vllm:num_requests_running{model_name="deepseek-chat"} 0');

    const generatedBefore = await metricValue(VLLM_METRICS.generationTokensTotal);
    const e2eBefore = await metricValue(`${VLLM_METRICS.e2eRequestLatencySeconds}_count`);
    // Slow the model down so that requests are still running when we scrape.
    sim.setConfig({ timeScale: 1 });
    const load = Array.from({ length: 6 }, (_, i) =>
      post("/completions", { model: "deepseek-chat", prompt: `load ${i}`, max_tokens: 40 }),
    );
    await expect
      .poll(() => metricValue(VLLM_METRICS.numRequestsRunning), { timeout: 5_000, interval: 20 })
      .toBeGreaterThan(0);
    expect(await metricValue(VLLM_METRICS.kvCacheUsagePerc)).toBeGreaterThan(0);
    await Promise.all(load);
    sim.setConfig({ timeScale: 0.02 });
    expect(await metricValue(VLLM_METRICS.numRequestsRunning)).toBe(0);
    expect(await metricValue(VLLM_METRICS.generationTokensTotal)).toBeGreaterThan(generatedBefore);
    expect(await metricValue(`${VLLM_METRICS.e2eRequestLatencySeconds}_count`)).toBe(e2eBefore + 6);
  });

  it("changes its config at run time over HTTP, and refuses unknown options", async () => {
    const ok = await fetch(`${root}/sim/config`, { method: "POST", body: JSON.stringify({ down: true }) });
    expect(ok.status).toBe(200);
    expect((await fetch(`${root}/health`)).status).toBe(503);
    expect((await post("/completions", { model: "deepseek-chat", prompt: "x" })).status).toBe(503);
    await fetch(`${root}/sim/config`, { method: "POST", body: JSON.stringify({ down: false }) });
    expect((await post("/completions", { model: "deepseek-chat", prompt: "x" })).status).toBe(200);
    const typo = await fetch(`${root}/sim/config`, {
      method: "POST",
      body: JSON.stringify({ failure_rate: 1 }),
    });
    expect(typo.status).toBe(400);
    expect(((await typo.json()) as { error: { message: string } }).error.message).toContain("failure_rate");
    const stats = (await (await fetch(`${root}/sim/stats`)).json()) as { failuresInjected: { down: number } };
    expect(stats.failuresInjected.down).toBe(1);
  });
});

describe("simulator queue", () => {
  it("runs max-num-seqs at once and answers 429 beyond the waiting queue", async () => {
    const small = await startSimulator({ port: 0, maxNumSeqs: 1, maxWaitingQueueLength: 1 });
    try {
      const send = () =>
        fetch(`${small.url}/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "deepseek-chat", prompt: "hello", max_tokens: 40 }),
        });
      // Each request takes ~0.6 s at real speed; wait for the engine's state, not for a fixed time.
      const first = send();
      await expect.poll(() => small.stats().maxRunning, { timeout: 5_000, interval: 5 }).toBe(1);
      const second = send();
      await expect.poll(() => small.stats().maxWaiting, { timeout: 5_000, interval: 5 }).toBe(1);
      const third = await send();
      expect(third.status).toBe(429);
      expect(third.headers.get("retry-after")).toBe("1");
      expect((await first).status).toBe(200);
      expect((await second).status).toBe(200);
      expect(small.stats()).toMatchObject({ maxRunning: 1, maxWaiting: 1, queueFull: 1, succeeded: 2 });
    } finally {
      await small.stop();
    }
  });
});
