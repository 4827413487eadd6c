import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { BOS_TOKENS, countChatTokens, countTokens, warmTokenizer } from "../../functions/shared/tokenizer.ts";
import { BatchEngine, realClock, type SequenceHandle } from "./latency-model.ts";
import { createSimMetrics } from "./metrics.ts";
import {
  type ChatRequestBody,
  type CompletionRequestBody,
  chatRequestSchema,
  completionRequestSchema,
  contextLengthMessage,
  errorBody,
} from "./openai-schema.ts";
import {
  type FailureType,
  type RuntimeConfig,
  resolveSimOptions,
  runtimeConfigSchema,
  type SimOptions,
} from "./options.ts";
import { generateText, seededRandom } from "./text.ts";

/**
 * The OpenAI-compatible model-server simulator: vLLM's API, metrics, latency
 * under load and failures, without a GPU. `deepqueue sim` and `deepqueue dev`
 * run it; integration tests start one per suite on a free port.
 */

export interface SimCall {
  endpoint: "completions" | "chat";
  model: string;
  /** Prompts in the call: the length of a completions `prompt` array, 1 for chat. */
  prompts: number;
  stream: boolean;
  /** The HTTP status answered; 0 when the simulator dropped the connection, 499 when the client went away. */
  status: number;
}

export interface SimStats {
  /** Inference requests received (completions + chat), whatever their outcome. */
  requests: number;
  completionCalls: number;
  chatCalls: number;
  /** Prompts per `/v1/completions` call, in arrival order: a batcher's batches, as the model server sees them. */
  promptsPerCall: number[];
  /** The last 10,000 inference calls, oldest first. */
  calls: SimCall[];
  /** Calls answered 200. */
  succeeded: number;
  failuresInjected: Record<FailureType | "down", number>;
  /** 429s because the waiting queue was full. */
  queueFull: number;
  /** 400s for prompt + max_tokens beyond --max-model-len. */
  contextLengthErrors: number;
  /** Other 4xx (bad JSON, schema, unknown model). */
  invalidRequests: number;
  promptTokens: number;
  completionTokens: number;
  /** Peaks since the last reset. */
  maxRunning: number;
  maxWaiting: number;
}

export interface Simulator {
  /** The OpenAI base URL, ending in `/v1`: what INFERENCE_URL takes. */
  url: string;
  port: number;
  options: Readonly<SimOptions>;
  /** Changes failure injection or latencies at run time (the same as `POST /sim/config`). */
  setConfig(partial: RuntimeConfig): void;
  config(): Required<RuntimeConfig>;
  stats(): SimStats;
  resetStats(): void;
  stop(): Promise<void>;
}

const MAX_CALLS_KEPT = 10_000;

function emptyStats(): SimStats {
  return {
    requests: 0,
    completionCalls: 0,
    chatCalls: 0,
    promptsPerCall: [],
    calls: [],
    succeeded: 0,
    failuresInjected: { rate_limit: 0, server_error: 0, unavailable: 0, timeout: 0, dropped: 0, down: 0 },
    queueFull: 0,
    contextLengthErrors: 0,
    invalidRequests: 0,
    promptTokens: 0,
    completionTokens: 0,
    maxRunning: 0,
    maxWaiting: 0,
  };
}

class HttpAnswer extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

const FAILURE_ANSWERS = {
  rate_limit: [429, "RateLimitError", "Rate limit reached (simulated); retry after the Retry-After delay."],
  server_error: [500, "InternalServerError", "Internal server error (simulated)."],
  unavailable: [503, "ServiceUnavailableError", "The model server is overloaded or restarting (simulated)."],
} as const;

/**
 * @example
 * const sim = await startSimulator({ port: 0, timeScale: 0.01 });
 * const client = createInferenceClient({ baseUrl: sim.url });
 * sim.setConfig({ down: true }); // the model goes away
 * await sim.stop();
 */
export async function startSimulator(options: Partial<SimOptions> = {}): Promise<Simulator> {
  const opts = resolveSimOptions(options);
  warmTokenizer();
  const runtime: Required<RuntimeConfig> = {
    failureRate: opts.failureRate,
    failureTypes: [...opts.failureTypes],
    down: false,
    unavailableModels: [],
    failNext: 0,
    slowResponseMs: opts.slowResponseMs,
    retryAfterSeconds: opts.retryAfterSeconds,
    timeScale: opts.timeScale,
    prefillOverheadMs: opts.prefillOverheadMs,
    prefillTimePerTokenMs: opts.prefillTimePerTokenMs,
    interTokenLatencyMs: opts.interTokenLatencyMs,
    timeFactorUnderLoad: opts.timeFactorUnderLoad,
  };
  const engine = new BatchEngine(
    () => ({ ...runtime, maxNumSeqs: opts.maxNumSeqs }),
    {
      maxNumSeqs: opts.maxNumSeqs,
      maxWaitingQueueLength: opts.maxWaitingQueueLength,
      kvCacheTokens: opts.kvCacheTokens,
    },
    realClock,
  );
  const metrics = createSimMetrics(engine, opts.servedModelNames[0]!);
  const dice = seededRandom(opts.seed);
  let stats = emptyStats();
  const pendingTimers = new Set<NodeJS.Timeout>();

  function setConfig(partial: RuntimeConfig): void {
    const parsed = runtimeConfigSchema.safeParse(partial);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const name = issue?.code === "unrecognized_keys" ? issue.keys.join(", ") : String(issue?.path[0] ?? "");
      throw new Error(`simulator config ${name}: ${issue?.message ?? "invalid"}`);
    }
    Object.assign(runtime, stripUndefined(parsed.data));
  }

  function notePeaks(): void {
    stats.maxRunning = Math.max(stats.maxRunning, engine.numRunning);
    stats.maxWaiting = Math.max(stats.maxWaiting, engine.numWaiting);
  }

  /** Which failure, if any, this request gets. */
  function drawFailure(model: string): FailureType | "down" | undefined {
    if (runtime.down || runtime.unavailableModels.includes(model)) return "down";
    const pick = () => runtime.failureTypes[Math.floor(dice() * runtime.failureTypes.length)]!;
    if (runtime.failNext > 0) {
      runtime.failNext -= 1;
      return pick();
    }
    if (runtime.failureRate > 0 && dice() < runtime.failureRate) return pick();
    return undefined;
  }

  async function handleInference(
    endpoint: SimCall["endpoint"],
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    stats.requests += 1;
    const call: SimCall = { endpoint, model: "", prompts: 0, stream: false, status: 0 };
    const record = (status: number) => {
      call.status = status;
    };
    try {
      const raw = await readJson(req, opts.maxBodyBytes);
      const parsed =
        endpoint === "completions"
          ? completionRequestSchema.safeParse(raw)
          : chatRequestSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new HttpAnswer(
          400,
          errorBody(
            400,
            "BadRequestError",
            `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`,
          ),
        );
      }
      const body = parsed.data;
      const prompts =
        endpoint === "completions"
          ? ([] as string[]).concat((body as CompletionRequestBody).prompt)
          : [JSON.stringify((body as ChatRequestBody).messages)];
      call.model = body.model;
      call.prompts = prompts.length;
      call.stream = body.stream === true;
      if (endpoint === "completions") {
        stats.completionCalls += 1;
        stats.promptsPerCall.push(prompts.length);
      } else {
        stats.chatCalls += 1;
      }
      stats.calls.push(call);
      if (stats.calls.length > MAX_CALLS_KEPT) stats.calls.shift();

      if (!opts.servedModelNames.includes(body.model)) {
        throw new HttpAnswer(
          404,
          errorBody(404, "NotFoundError", `The model \`${body.model}\` does not exist.`, "model"),
        );
      }

      const failure = drawFailure(body.model);
      if (failure) {
        stats.failuresInjected[failure] += 1;
        const retryAfter = { "retry-after": String(runtime.retryAfterSeconds) };
        if (failure === "down") {
          throw new HttpAnswer(
            503,
            errorBody(
              503,
              "ServiceUnavailableError",
              `The model \`${body.model}\` is unavailable (simulated).`,
            ),
            retryAfter,
          );
        }
        if (failure === "dropped") {
          req.socket.destroy();
          return;
        }
        if (failure === "timeout") {
          const closed = await delayUnlessClosed(runtime.slowResponseMs, res, pendingTimers);
          if (closed) return;
        } else {
          const [status, type, message] = FAILURE_ANSWERS[failure];
          throw new HttpAnswer(status, errorBody(status, type, message), status === 500 ? {} : retryAfter);
        }
      }

      const promptTokens =
        endpoint === "completions"
          ? prompts.map((p) => countTokens(p) + BOS_TOKENS)
          : [countChatTokens((body as ChatRequestBody).messages)];
      const requested = body.max_tokens ?? body.max_completion_tokens ?? undefined;
      const maxTokensFor = (p: number) =>
        requested ?? (endpoint === "completions" ? 16 : Math.max(1, opts.maxModelLen - p));
      for (const p of promptTokens) {
        const maxTokens = maxTokensFor(p);
        if (p + maxTokens > opts.maxModelLen) {
          stats.contextLengthErrors += 1;
          throw new HttpAnswer(
            400,
            errorBody(400, "BadRequestError", contextLengthMessage(opts.maxModelLen, p, maxTokens)),
          );
        }
      }

      await generate(endpoint, body, prompts, promptTokens, maxTokensFor, res, call);
    } catch (error) {
      if (error instanceof HttpAnswer) {
        if (error.status >= 400 && error.status < 500 && error.status !== 429 && !isContextError(error)) {
          stats.invalidRequests += 1;
        }
        record(error.status);
        sendJson(res, error.status, error.body, error.headers);
        return;
      }
      record(500);
      sendJson(res, 500, errorBody(500, "InternalServerError", "simulator error"));
    }
  }

  async function generate(
    endpoint: SimCall["endpoint"],
    body: CompletionRequestBody | ChatRequestBody,
    prompts: string[],
    promptTokens: number[],
    maxTokensFor: (p: number) => number,
    res: ServerResponse,
    call: SimCall,
  ): Promise<void> {
    const arrival = realClock.now();
    const model = body.model;
    const label = { model_name: model };
    const outputs = prompts.map((prompt, i) =>
      generateText({
        model,
        prompt,
        seed: body.seed ?? undefined,
        temperature: body.temperature ?? undefined,
        maxTokens: maxTokensFor(promptTokens[i]!),
      }),
    );
    const stream = body.stream === true;
    const includeUsage = body.stream_options?.include_usage === true;
    const id = `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`;
    const created = Math.floor(Date.now() / 1000);
    const object = endpoint === "chat" ? "chat.completion" : "text_completion";
    const usage = () => {
      const prompt = promptTokens.reduce((a, b) => a + b, 0);
      const completion = outputs.reduce((a, o) => a + o.tokens.length, 0);
      return { prompt_tokens: prompt, total_tokens: prompt + completion, completion_tokens: completion };
    };
    // vLLM names a chat stream's events "chat.completion.chunk" and a completions stream's "text_completion".
    const chunkObject = endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: chunkObject, created, model, choices, ...extra })}\n\n`;

    const handles: SequenceHandle[] = [];
    let finished = 0;
    let closed = false;
    const done = new Promise<void>((resolve) => {
      const onClose = () => {
        if (finished < outputs.length) {
          closed = true;
          call.status = 499;
          metrics.requestSuccess.inc({ ...label, finished_reason: "abort" }, outputs.length - finished);
          for (const h of handles) engine.cancel(h);
          resolve();
        }
      };
      res.on("close", onClose);
      outputs.forEach((out, index) => {
        const handle = engine.submit(
          {
            promptTokens: promptTokens[index]!,
            outputTokens: out.tokens.length,
            maxTokens: maxTokensFor(promptTokens[index]!),
          },
          {
            onStart(queueMs) {
              metrics.queueTime.observe(label, queueMs / 1000);
              metrics.promptTokens.inc(label, promptTokens[index]!);
              notePeaks();
            },
            onToken(i, gapMs) {
              metrics.generationTokens.inc(label);
              if (i === 1) metrics.timeToFirstToken.observe(label, (realClock.now() - arrival) / 1000);
              else metrics.interTokenLatency.observe(label, gapMs / 1000);
              if (!stream || closed) return;
              const piece = out.tokens[i - 1]!;
              const last = i === out.tokens.length;
              const finish = last ? out.finishReason : null;
              if (endpoint === "chat") {
                if (i === 1)
                  res.write(
                    chunk([
                      {
                        index,
                        delta: { role: "assistant", content: "" },
                        logprobs: null,
                        finish_reason: null,
                      },
                    ]),
                  );
                res.write(
                  chunk([{ index, delta: { content: piece }, logprobs: null, finish_reason: finish }]),
                );
              } else {
                res.write(
                  chunk([{ index, text: piece, logprobs: null, finish_reason: finish, stop_reason: null }]),
                );
              }
            },
            onFinish() {
              metrics.e2eLatency.observe(label, (realClock.now() - arrival) / 1000);
              metrics.requestSuccess.inc({ ...label, finished_reason: out.finishReason });
              finished += 1;
              if (finished === outputs.length) resolve();
            },
          },
        );
        if (handle) handles.push(handle);
      });
      notePeaks();
    });
    if (handles.length < outputs.length) {
      for (const h of handles) engine.cancel(h);
      stats.queueFull += 1;
      throw new HttpAnswer(
        429,
        errorBody(
          429,
          "RateLimitError",
          `The waiting queue is full (${opts.maxWaitingQueueLength} requests).`,
        ),
        { "retry-after": String(runtime.retryAfterSeconds) },
      );
    }
    if (stream) {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      res.flushHeaders();
    }
    await done;
    if (closed) return;
    const u = usage();
    stats.succeeded += 1;
    stats.promptTokens += u.prompt_tokens;
    stats.completionTokens += u.completion_tokens;
    call.status = 200;
    if (stream) {
      if (includeUsage) res.write(chunk([], { usage: u }));
      res.end("data: [DONE]\n\n");
      return;
    }
    const choices = outputs.map((out, index) =>
      endpoint === "chat"
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
    sendJson(res, 200, { id, object, created, model, choices, usage: u });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://sim").pathname;
    const method = req.method ?? "GET";
    if (opts.apiKey && path.startsWith("/v1/") && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      // vLLM's --api-key middleware guards /v1 and answers exactly this.
      return sendJson(res, 401, { error: "Unauthorized" });
    }
    if (method === "POST" && path === "/v1/completions") return handleInference("completions", req, res);
    if (method === "POST" && path === "/v1/chat/completions") return handleInference("chat", req, res);
    if (method === "GET" && path === "/v1/models") {
      const created = Math.floor(Date.now() / 1000);
      return sendJson(res, 200, {
        object: "list",
        data: opts.servedModelNames.map((id) => ({
          id,
          object: "model",
          created,
          owned_by: "vllm",
          root: id,
          parent: null,
          max_model_len: opts.maxModelLen,
        })),
      });
    }
    if (method === "GET" && path === "/health") {
      res.writeHead(runtime.down ? 503 : 200).end();
      return;
    }
    if (method === "GET" && path === "/metrics") {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text);
      return;
    }
    if (method === "GET" && path === "/sim/stats") return sendJson(res, 200, stats);
    if (method === "POST" && path === "/sim/stats/reset") {
      stats = emptyStats();
      return sendJson(res, 200, stats);
    }
    if (path === "/sim/config" && (method === "GET" || method === "POST")) {
      if (method === "POST") {
        try {
          setConfig((await readJson(req, 64 * 1024)) as RuntimeConfig);
        } catch (error) {
          const message = error instanceof HttpAnswer ? "invalid JSON" : (error as Error).message;
          return sendJson(res, 400, errorBody(400, "BadRequestError", message));
        }
      }
      return sendJson(res, 200, runtime);
    }
    sendJson(res, 404, { detail: "Not Found" });
  }

  const server = createServer((req, res) => {
    route(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 500, errorBody(500, "InternalServerError", "simulator error"));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://${opts.host}:${port}/v1`,
    port,
    options: opts,
    setConfig,
    config: () => ({
      ...runtime,
      failureTypes: [...runtime.failureTypes],
      unavailableModels: [...runtime.unavailableModels],
    }),
    stats: () => structuredClone(stats),
    resetStats: () => {
      stats = emptyStats();
    },
    async stop() {
      for (const t of pendingTimers) clearTimeout(t);
      pendingTimers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function isContextError(answer: HttpAnswer): boolean {
  const body = answer.body as { error?: { message?: string } };
  return answer.status === 400 && /maximum context length/.test(body.error?.message ?? "");
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(text);
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      throw new HttpAnswer(413, errorBody(413, "BadRequestError", `request body larger than ${limit} bytes`));
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpAnswer(400, errorBody(400, "BadRequestError", "the body is not valid JSON"));
  }
}

/** Waits `ms`; true if the client went away meanwhile. */
function delayUnlessClosed(ms: number, res: ServerResponse, timers: Set<NodeJS.Timeout>): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      res.off("close", onClose);
      resolve(false);
    }, ms);
    timers.add(timer);
    const onClose = () => {
      clearTimeout(timer);
      timers.delete(timer);
      resolve(true);
    };
    res.once("close", onClose);
  });
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
