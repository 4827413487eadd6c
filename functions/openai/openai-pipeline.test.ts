import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTenant } from "../../test/helpers/ingest.ts";
import { type Pipeline, startPipeline } from "../../test/helpers/pipeline.ts";
import { ingestDepsFromEnv } from "../ingest/deps.ts";
import { createIngestHandler } from "../ingest/handler.ts";
import { type HttpServerHandle, serveHttp } from "../runtime/http.ts";
import { createLogger } from "../shared/logger.ts";

/**
 * End to end: ingest's OpenAI-compatible routes in front of the real cache stage and batcher
 * (in-process workers) and the model-server simulator; the batcher streams the model's tokens to
 * this replica's reply queue and sends `done` when the request ends.
 */
describe("chat completions through the whole pipeline", () => {
  let p: Pipeline;
  let server: HttpServerHandle;
  let handler: ReturnType<typeof createIngestHandler>;
  let client: OpenAI;

  beforeAll(async () => {
    p = await startPipeline();
    const deps = ingestDepsFromEnv(p.stack.env, { logger: createLogger({ level: "silent" }) });
    handler = createIngestHandler(deps, { openai: { model: "deepseek-chat", deadlineSeconds: 60 } });
    server = await serveHttp(handler, { port: 0, host: "127.0.0.1", drainMs: 1000 });
    const { api_key } = await makeTenant(p.stack, "acme", { dailyRequests: null });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: api_key, maxRetries: 0 });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await handler?.close();
    await p?.stop();
  });

  async function stored(id: string) {
    return (await p.requests.get(id))!;
  }

  it("streams the model's tokens as they come, the text equal to the stored result", async () => {
    const before = p.sim.config();
    // Real-time tokens (25 ms apart): 40 tokens take about a second, in ~100 ms deltas.
    p.sim.setConfig({ timeScale: 1, interTokenLatencyMs: 25, prefillOverheadMs: 5 });
    try {
      const stream = await client.chat.completions.create({
        model: "deepseek-chat",
        messages: [{ role: "user", content: "tell me about queues" }],
        max_tokens: 40,
        temperature: 0.7,
        stream: true,
        stream_options: { include_usage: true },
      });
      const arrivals: number[] = [];
      let content = "";
      let id = "";
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream) {
        id = chunk.id;
        const text = chunk.choices[0]?.delta.content;
        if (text) {
          content += text;
          arrivals.push(Date.now());
        }
        usage = chunk.usage ?? usage;
      }
      const record = await stored(id);
      expect(record.status).toBe("completed");
      expect(content).toBe(record.result!.text);
      // Streamed for real: several pieces, spread over the answer's time, not one at the end. The
      // simulator ends a sampled answer after 8–40 tokens here (25 ms apart): the pieces span at
      // least half of that time.
      expect(arrivals.length).toBeGreaterThan(2);
      const tokens = record.result!.usage.completion_tokens;
      expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(((tokens - 1) * 25) / 2);
      expect(usage).toMatchObject({ completion_tokens: record.result!.usage.completion_tokens });
    } finally {
      p.sim.setConfig(before);
    }
  });

  it("answers a plain chat, then the same prompt at temperature 0 from the cache, streamed whole", async () => {
    const body = {
      model: "deepseek-chat",
      messages: [{ role: "user" as const, content: "what is a dead-letter queue?" }],
      max_tokens: 16,
      temperature: 0,
    };
    const first = await client.chat.completions.create(body);
    expect(first.choices[0]!.message.content).toBe((await stored(first.id)).result!.text);
    expect((await stored(first.id)).result!.source).toBe("model");

    const again = await client.chat.completions.create({ ...body, stream: true });
    const chunks = [];
    for await (const chunk of again) chunks.push(chunk);
    const record = await stored(chunks[0]!.id);
    expect(record.result!.source).toBe("cache");
    const texts = chunks.map((c) => c.choices[0]?.delta.content).filter(Boolean);
    expect(texts).toEqual([first.choices[0]!.message.content]);
  });

  it("answers completions.create through the pipeline", async () => {
    const completion = await client.completions.create({
      model: "deepseek-chat",
      prompt: "Say hi",
      max_tokens: 8,
    });
    expect(completion.choices[0]!.text).toBe((await stored(completion.id)).result!.text);
    expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
  });
});
