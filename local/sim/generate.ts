import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { ModelUsage } from "../../events/index.ts";
import { HttpAnswer, sendJson } from "./http.ts";
import { type BatchEngine, realClock, type SequenceHandle } from "./latency-model.ts";
import type { SimMetrics } from "./metrics.ts";
import { errorBody } from "./openai-schema.ts";
import { type Generated, generateText } from "./text.ts";

/**
 * One validated inference call run through the engine: one sequence per
 * prompt, answered as vLLM answers (a JSON body, or server-sent events with
 * one event per token, ending in `data: [DONE]`).
 */
export interface GenerationJob {
  endpoint: "completions" | "chat";
  model: string;
  /** What identifies each prompt for the text generator (the chat messages, serialised). */
  prompts: string[];
  promptTokens: number[];
  maxTokens: number[];
  seed: number | undefined;
  temperature: number | undefined;
  stream: boolean;
  includeUsage: boolean;
}

export interface GenerationDeps {
  engine: BatchEngine;
  metrics: SimMetrics;
  /** Called when the engine's running / waiting counts may have peaked. */
  onPeak(): void;
  retryAfterSeconds: number;
  maxWaitingQueueLength: number;
}

type Usage = Pick<ModelUsage, "prompt_tokens" | "completion_tokens" | "total_tokens">;

/** 200 with the usage, or 499 when the client went away (its sequences were cancelled). */
export type GenerationOutcome = { status: 200; usage: Usage } | { status: 499 };

/** How far one request's sequences got: all finished, or the client closed first. */
interface Progress {
  finished: number;
  readonly total: number;
  closed: boolean;
  resolve(): void;
}

/** The engine's callbacks for one sequence: vLLM's metrics, the streamed tokens, and completion. */
function sequenceCallbacks(c: {
  job: GenerationJob;
  deps: GenerationDeps;
  index: number;
  output: ReturnType<typeof generateText>;
  sse: ReturnType<typeof sseWriter> | undefined;
  arrival: number;
  progress: Progress;
}) {
  const { metrics } = c.deps;
  const label = { model_name: c.job.model };
  return {
    onStart(queueMs: number) {
      metrics.queueTime.observe(label, queueMs / 1000);
      metrics.promptTokens.inc(label, c.job.promptTokens[c.index]!);
      c.deps.onPeak();
    },
    onToken(i: number, gapMs: number) {
      metrics.generationTokens.inc(label);
      // vLLM measures time to first token from arrival, queueing included.
      if (i === 1) metrics.timeToFirstToken.observe(label, (realClock.now() - c.arrival) / 1000);
      else metrics.interTokenLatency.observe(label, gapMs / 1000);
      if (c.sse && !c.progress.closed) c.sse.token(c.index, c.output, i);
    },
    onFinish() {
      metrics.e2eLatency.observe(label, (realClock.now() - c.arrival) / 1000);
      metrics.requestSuccess.inc({ ...label, finished_reason: c.output.finishReason });
      c.progress.finished += 1;
      if (c.progress.finished === c.progress.total) c.progress.resolve();
    },
  };
}

/** @throws HttpAnswer 429 when the engine's waiting queue is full. */
export async function runGeneration(
  job: GenerationJob,
  res: ServerResponse,
  deps: GenerationDeps,
): Promise<GenerationOutcome> {
  const { engine, metrics } = deps;
  const arrival = realClock.now();
  const label = { model_name: job.model };
  const outputs = job.prompts.map((prompt, i) =>
    generateText({
      model: job.model,
      prompt,
      seed: job.seed,
      temperature: job.temperature,
      maxTokens: job.maxTokens[i]!,
    }),
  );
  const sse = job.stream ? sseWriter(job, res) : undefined;

  const handles: SequenceHandle[] = [];
  const progress: Progress = { finished: 0, total: outputs.length, closed: false, resolve: () => {} };
  const done = new Promise<void>((resolve) => {
    progress.resolve = resolve;
    res.on("close", () => {
      if (progress.finished === outputs.length) return;
      progress.closed = true;
      metrics.requestSuccess.inc({ ...label, finished_reason: "abort" }, outputs.length - progress.finished);
      for (const h of handles) engine.cancel(h);
      resolve();
    });
    outputs.forEach((out, index) => {
      const handle = engine.submit(
        {
          promptTokens: job.promptTokens[index]!,
          outputTokens: out.tokens.length,
          maxTokens: job.maxTokens[index]!,
        },
        sequenceCallbacks({ job, deps, index, output: out, sse, arrival, progress }),
      );
      if (handle) handles.push(handle);
    });
    deps.onPeak();
  });
  if (handles.length < outputs.length) {
    for (const h of handles) engine.cancel(h);
    throw new HttpAnswer(
      429,
      errorBody(429, "RateLimitError", `The waiting queue is full (${deps.maxWaitingQueueLength} requests).`),
      { "retry-after": String(deps.retryAfterSeconds) },
    );
  }
  sse?.open();
  await done;
  if (progress.closed) return { status: 499 };

  const prompt = job.promptTokens.reduce((a, b) => a + b, 0);
  const completion = outputs.reduce((a, o) => a + o.tokens.length, 0);
  const usage = { prompt_tokens: prompt, total_tokens: prompt + completion, completion_tokens: completion };
  if (sse) sse.end(usage);
  else sendJson(res, 200, completeBody(job, outputs, usage));
  return { status: 200, usage };
}

function ids(job: GenerationJob) {
  return {
    id: `${job.endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`,
    created: Math.floor(Date.now() / 1000),
    model: job.model,
  };
}

function completeBody(job: GenerationJob, outputs: Generated[], usage: Usage) {
  const choices = outputs.map((out, index) =>
    job.endpoint === "chat"
      ? {
          index,
          message: { role: "assistant", content: out.tokens.join(""), tool_calls: [] },
          logprobs: null,
          finish_reason: out.finishReason,
          stop_reason: null,
        }
      : {
          index,
          text: out.tokens.join(""),
          logprobs: null,
          finish_reason: out.finishReason,
          stop_reason: null,
          prompt_logprobs: null,
        },
  );
  const object = job.endpoint === "chat" ? "chat.completion" : "text_completion";
  return { ...ids(job), object, choices, usage };
}

function sseWriter(job: GenerationJob, res: ServerResponse) {
  const head = ids(job);
  // vLLM names a chat stream's events "chat.completion.chunk" and a completions stream's "text_completion".
  const object = job.endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
  const event = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    res.write(`data: ${JSON.stringify({ ...head, object, choices, ...extra })}\n\n`);
  return {
    open() {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      res.flushHeaders();
    },
    token(index: number, out: Generated, i: number) {
      const finish_reason = i === out.tokens.length ? out.finishReason : null;
      const content = out.tokens[i - 1]!;
      if (job.endpoint === "completions") {
        event([{ index, text: content, logprobs: null, finish_reason, stop_reason: null }]);
        return;
      }
      if (i === 1)
        event([{ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
      event([{ index, delta: { content }, logprobs: null, finish_reason }]);
    },
    end(usage: Usage) {
      if (job.includeUsage) event([], { usage });
      res.end("data: [DONE]\n\n");
    },
  };
}
