import OpenAI from "openai";
import { notAvailable, type Scenario } from "../scenario.ts";
import { round, summarize } from "../stats.ts";

/** Requests of each kind, one at a time (low load): full run, quick run. */
const REQUESTS = { full: 8, quick: 4 } as const;
/** Answer length of every request here: long enough that streaming matters, short enough to stay under a minute. */
const MAX_TOKENS = 32;
/** `POST /v1/requests` + poll: how often `GET /v1/requests/{id}` is asked. */
const POLL_MS = 25;
/** The goal: the first streamed token within the model's own time to first token + this. */
const TTFT_GOAL_MS = 100;

type Chat = OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming;

/** Time to the first chunk with content, and to the end, of one streamed chat. */
async function streamed(client: OpenAI, body: Chat): Promise<{ ttftMs: number; totalMs: number }> {
  const started = performance.now();
  let ttftMs = Number.NaN;
  const stream = await client.chat.completions.create(body);
  for await (const chunk of stream) {
    if (Number.isNaN(ttftMs) && chunk.choices[0]?.delta.content) ttftMs = performance.now() - started;
  }
  return { ttftMs, totalMs: performance.now() - started };
}

/** `POST /v1/requests`, then `GET /v1/requests/{id}` every POLL_MS until it is completed. */
async function submitAndPoll(
  ingestUrl: string,
  apiKey: string,
  prompt: string,
  timeoutMs: number,
): Promise<number> {
  const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
  const started = performance.now();
  const res = await fetch(`${ingestUrl}/v1/requests`, {
    method: "POST",
    headers,
    body: JSON.stringify({ prompt, max_tokens: MAX_TOKENS, temperature: 0.7 }),
  });
  const { id } = (await res.json()) as { id: string };
  while (performance.now() - started < timeoutMs) {
    const record = (await (await fetch(`${ingestUrl}/v1/requests/${id}`, { headers })).json()) as {
      status: string;
    };
    if (record.status === "completed") return performance.now() - started;
    if (record.status === "failed") break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return Number.NaN;
}

function row(name: string, values: number[]) {
  const ok = values.filter((v) => !Number.isNaN(v));
  const s = summarize(ok);
  return [name, ok.length, round(s.p50), round(s.p90), round(s.max)];
}

export const streamingScenario: Scenario = {
  id: "streaming",
  number: 9,
  title: "Streaming: time to first token through the queue",
  question:
    "At low load, how long until the first streamed token reaches a caller of `POST /v1/chat/completions` (stream: true, the official openai client) compared with the model server's own time to first token, called directly; and a non-streamed chat completion against `POST /v1/requests` + polling.",
  async run(ctx) {
    if (!ctx.ingestUrl)
      return notAvailable(`the pipeline is not running (${ctx.stack.functionsUnavailable})`);
    const n = REQUESTS[ctx.settings.mode];
    const model = ctx.settings.model;
    const stamp = Date.now().toString(36);
    const direct = new OpenAI({ baseURL: ctx.stack.simulator.url, apiKey: "direct", maxRetries: 0 });
    const queued = new OpenAI({ baseURL: `${ctx.ingestUrl}/v1`, apiKey: ctx.stack.apiKey, maxRetries: 0 });
    const bar = ctx.progress("9 streaming", n * 4);
    const prompt = (kind: string, i: number) =>
      `bench streaming ${stamp} ${kind} #${i}: what is time to first token?`;
    const chat = (kind: string, i: number): Chat => ({
      model,
      messages: [{ role: "user", content: prompt(kind, i) }],
      max_tokens: MAX_TOKENS,
      temperature: 0.7,
      stream: true,
    });
    // Warm-up, not measured: the first request of a fresh stack waits for the tokenizer to load
    // (ingest counts the prompt, the batcher the answer) and for the reply queue to be made.
    await streamed(direct, chat("warm-up", 0));
    await streamed(queued, chat("warm-up", 0));
    const m = {
      directTtft: [] as number[],
      queuedTtft: [] as number[],
      chatMs: [] as number[],
      pollMs: [] as number[],
    };
    for (let i = 0; i < n; i++) {
      m.directTtft.push((await streamed(direct, chat("direct", i))).ttftMs);
      bar.tick();
      m.queuedTtft.push((await streamed(queued, chat("queued", i))).ttftMs);
      bar.tick();
      const started = performance.now();
      await queued.chat.completions.create({ ...chat("plain", i), stream: false });
      m.chatMs.push(performance.now() - started);
      bar.tick();
      m.pollMs.push(
        await submitAndPoll(ctx.ingestUrl, ctx.stack.apiKey, prompt("poll", i), ctx.settings.answerTimeoutMs),
      );
      bar.tick();
    }
    bar.done();
    const directP50 = summarize(m.directTtft.filter((v) => !Number.isNaN(v))).p50;
    const queuedP50 = summarize(m.queuedTtft.filter((v) => !Number.isNaN(v))).p50;
    const overheadMs = round(queuedP50 - directP50);
    const met = overheadMs <= TTFT_GOAL_MS;
    const chatP50 = round(summarize(m.chatMs).p50);
    const pollP50 = round(summarize(m.pollMs.filter((v) => !Number.isNaN(v))).p50);
    return {
      status: "ok" as const,
      headline: [
        `first streamed token through deepqueue p50 **${round(queuedP50)} ms** vs the model's own ${round(directP50)} ms: **+${overheadMs} ms** (goal ≤ +${TTFT_GOAL_MS} ms: ${met ? "met" : "not met"})`,
        `non-streamed chat completion p50 ${chatP50} ms vs POST /v1/requests + polling every ${POLL_MS} ms p50 ${pollP50} ms`,
      ],
      tables: [
        {
          title: `Time to first token, ${n} sequential streamed chats each (${MAX_TOKENS} tokens)`,
          columns: ["path", "count", "p50 ms", "p90 ms", "max ms"],
          rows: [
            row("model server, called directly", m.directTtft),
            row("deepqueue, stream: true", m.queuedTtft),
          ],
        },
        {
          title: "A whole answer, not streamed",
          columns: ["path", "count", "p50 ms", "p90 ms", "max ms"],
          rows: [
            row("POST /v1/chat/completions", m.chatMs),
            row(`POST /v1/requests + poll (${POLL_MS} ms)`, m.pollMs),
          ],
        },
      ],
      charts: [],
      notes: [
        "The streamed path: ingest → inference queue → batcher (a streaming model call) → ~100 ms deltas on the replica's reply queue → server-sent events; the first text goes at once.",
        "Sequential requests, so each is served alone by the model: low load, as the goal states.",
      ],
      data: {
        ...m,
        directTtftP50: directP50,
        queuedTtftP50: queuedP50,
        overheadMs,
        goalMet: met,
        chatP50,
        pollP50,
      },
    };
  },
};
