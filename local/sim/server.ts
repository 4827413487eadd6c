import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { BOS_TOKENS, countChatTokens, countTokens, warmTokenizer } from "../../functions/shared/tokenizer.ts";
import { drawFailure, failureAnswer } from "./failures.ts";
import { runGeneration } from "./generate.ts";
import { delayUnlessClosed, HttpAnswer, readJson, sendJson } from "./http.ts";
import { BatchEngine, realClock } from "./latency-model.ts";
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
  type RuntimeConfig,
  resolveSimOptions,
  runtimeConfigSchema,
  type SimOptions,
  SimOptionsError,
} from "./options.ts";
import { emptyStats, recordCall, type SimCall, type SimStats } from "./stats.ts";
import { seededRandom } from "./text.ts";

export type { SimCall, SimStats } from "./stats.ts";

/**
 * The OpenAI-compatible model-server simulator: vLLM's API, metrics, latency
 * under load and failures, without a GPU. `deepqueue sim` and `deepqueue dev`
 * run it; integration tests start one per suite on a free port.
 */
export interface Simulator {
  /** The OpenAI base URL, ending in `/v1`: what INFERENCE_URL takes. */
  url: string;
  port: number;
  options: Readonly<SimOptions>;
  /** Changes failure injection or latencies at run time (the same as `POST /sim/config`); throws naming a bad key. */
  setConfig(partial: RuntimeConfig): void;
  config(): Required<RuntimeConfig>;
  stats(): SimStats;
  resetStats(): void;
  stop(): Promise<void>;
}

/** vLLM's default `max_tokens` for /v1/completions; chat defaults to the rest of the context window. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;
const CONFIG_BODY_LIMIT = 64 * 1024;

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
    if (!parsed.success) throw new SimOptionsError("simulator config", parsed.error);
    Object.assign(runtime, stripUndefined(parsed.data));
  }

  function notePeaks(): void {
    stats.maxRunning = Math.max(stats.maxRunning, engine.numRunning);
    stats.maxWaiting = Math.max(stats.maxWaiting, engine.numWaiting);
  }

  /** Validation, failure injection and the context window, then the engine. */
  async function handleInference(
    endpoint: SimCall["endpoint"],
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<number> {
    const raw = await readJson(req, opts.maxBodyBytes);
    const parsed =
      endpoint === "completions" ? completionRequestSchema.safeParse(raw) : chatRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.join(".") || "body";
      throw new HttpAnswer(
        400,
        errorBody(400, "BadRequestError", `${where}: ${issue?.message ?? "invalid"}`),
      );
    }
    const body = parsed.data;
    const prompts =
      endpoint === "completions"
        ? ([] as string[]).concat((body as CompletionRequestBody).prompt)
        : [JSON.stringify((body as ChatRequestBody).messages)];
    const call: SimCall = {
      endpoint,
      model: body.model,
      prompts: prompts.length,
      stream: body.stream === true,
      status: 0,
    };
    recordCall(stats, call);
    const answer = async (): Promise<number> => {
      if (!opts.servedModelNames.includes(body.model)) {
        throw new HttpAnswer(
          404,
          errorBody(404, "NotFoundError", `The model \`${body.model}\` does not exist.`, "model"),
        );
      }

      const failure = drawFailure(runtime, body.model, dice);
      if (failure) {
        stats.failuresInjected[failure] += 1;
        if (failure === "dropped") {
          req.socket.destroy();
          return 0;
        }
        if (failure !== "timeout") throw failureAnswer(failure, runtime.retryAfterSeconds);
        // A slow answer: the client's timeout should fire first; if it waits, it gets a normal answer.
        if (await delayUnlessClosed(runtime.slowResponseMs, res, pendingTimers)) return 499;
      }

      const promptTokens =
        endpoint === "completions"
          ? prompts.map((p) => countTokens(p) + BOS_TOKENS)
          : [countChatTokens((body as ChatRequestBody).messages)];
      const requested = body.max_tokens ?? body.max_completion_tokens ?? undefined;
      const maxTokens = promptTokens.map(
        (p) =>
          requested ??
          (endpoint === "completions" ? COMPLETIONS_DEFAULT_MAX_TOKENS : Math.max(1, opts.maxModelLen - p)),
      );
      promptTokens.forEach((p, i) => {
        if (p + maxTokens[i]! > opts.maxModelLen) {
          stats.contextLengthErrors += 1;
          throw new HttpAnswer(
            400,
            errorBody(400, "BadRequestError", contextLengthMessage(opts.maxModelLen, p, maxTokens[i]!)),
          );
        }
      });

      const outcome = await runGeneration(
        {
          endpoint,
          model: body.model,
          prompts,
          promptTokens,
          maxTokens,
          seed: body.seed ?? undefined,
          temperature: body.temperature ?? undefined,
          stream: body.stream === true,
          includeUsage: body.stream_options?.include_usage === true,
        },
        res,
        {
          engine,
          metrics,
          onPeak: notePeaks,
          retryAfterSeconds: runtime.retryAfterSeconds,
          maxWaitingQueueLength: opts.maxWaitingQueueLength,
        },
      ).catch((error: unknown) => {
        if (error instanceof HttpAnswer && error.status === 429) stats.queueFull += 1;
        throw error;
      });
      if (outcome.status === 200) {
        stats.succeeded += 1;
        stats.promptTokens += outcome.usage.prompt_tokens;
        stats.completionTokens += outcome.usage.completion_tokens;
      }
      return outcome.status;
    };
    try {
      call.status = await answer();
    } catch (error) {
      if (error instanceof HttpAnswer) call.status = error.status;
      throw error;
    }
    return call.status;
  }

  async function inference(endpoint: SimCall["endpoint"], req: IncomingMessage, res: ServerResponse) {
    stats.requests += 1;
    try {
      await handleInference(endpoint, req, res);
    } catch (error) {
      if (!(error instanceof HttpAnswer)) throw error;
      const status = error.status;
      if (status >= 400 && status < 500 && status !== 429 && !isContextError(error))
        stats.invalidRequests += 1;
      sendJson(res, status, error.body, error.headers);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://sim").pathname;
    const method = req.method ?? "GET";
    if (opts.apiKey && path.startsWith("/v1/") && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      // vLLM's --api-key middleware guards /v1 and answers exactly this.
      return sendJson(res, 401, { error: "Unauthorized" });
    }
    if (method === "POST" && path === "/v1/completions") return inference("completions", req, res);
    if (method === "POST" && path === "/v1/chat/completions") return inference("chat", req, res);
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
          setConfig((await readJson(req, CONFIG_BODY_LIMIT)) as RuntimeConfig);
        } catch (error) {
          const message =
            error instanceof HttpAnswer ? "the body is not valid JSON" : (error as Error).message;
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

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
