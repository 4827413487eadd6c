import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { withoutUndefined } from "../../functions/shared/options.ts";
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

/** The parts of a parsed completions or chat request the simulator answers from. */
interface InferenceRequest {
  readonly endpoint: SimCall["endpoint"];
  readonly body: CompletionRequestBody | ChatRequestBody;
  /** One per completion choice (a completions prompt array), or the chat messages as one. */
  readonly prompts: string[];
}

/** vLLM's 400 for a body that does not parse, naming the first bad field. */
function parseInference(endpoint: SimCall["endpoint"], raw: unknown): InferenceRequest {
  const parsed =
    endpoint === "completions" ? completionRequestSchema.safeParse(raw) : chatRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join(".") || "body";
    throw new HttpAnswer(400, errorBody(400, "BadRequestError", `${where}: ${issue?.message ?? "invalid"}`));
  }
  const body = parsed.data;
  const prompts =
    endpoint === "completions"
      ? ([] as string[]).concat((body as CompletionRequestBody).prompt)
      : [JSON.stringify((body as ChatRequestBody).messages)];
  return { endpoint, body, prompts };
}

/** The simulator's HTTP server: the routes, failure injection, and the engine behind them. */
class SimServer implements Simulator {
  url = "";
  port = 0;
  readonly options: Readonly<SimOptions>;
  readonly #runtime: Required<RuntimeConfig>;
  readonly #engine: BatchEngine;
  readonly #metrics: ReturnType<typeof createSimMetrics>;
  readonly #dice: () => number;
  #stats = emptyStats();
  readonly #pendingTimers = new Set<NodeJS.Timeout>();
  readonly #server = createServer((req, res) => {
    this.#route(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 500, errorBody(500, "InternalServerError", "simulator error"));
      else res.destroy();
    });
  });

  constructor(opts: SimOptions) {
    this.options = opts;
    this.#runtime = {
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
    this.#engine = new BatchEngine(
      () => ({ ...this.#runtime, maxNumSeqs: opts.maxNumSeqs }),
      {
        maxNumSeqs: opts.maxNumSeqs,
        maxWaitingQueueLength: opts.maxWaitingQueueLength,
        kvCacheTokens: opts.kvCacheTokens,
      },
      realClock,
    );
    this.#metrics = createSimMetrics(this.#engine, opts.servedModelNames[0]!);
    this.#dice = seededRandom(opts.seed);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.port = (this.#server.address() as AddressInfo).port;
    this.url = `http://${this.options.host}:${this.port}/v1`;
  }

  setConfig(partial: RuntimeConfig): void {
    const parsed = runtimeConfigSchema.safeParse(partial);
    if (!parsed.success) throw new SimOptionsError("simulator config", parsed.error);
    Object.assign(this.#runtime, withoutUndefined(parsed.data));
  }

  config(): Required<RuntimeConfig> {
    return {
      ...this.#runtime,
      failureTypes: [...this.#runtime.failureTypes],
      unavailableModels: [...this.#runtime.unavailableModels],
    };
  }

  stats(): SimStats {
    return structuredClone(this.#stats);
  }

  resetStats(): void {
    this.#stats = emptyStats();
  }

  async stop(): Promise<void> {
    for (const t of this.#pendingTimers) clearTimeout(t);
    this.#pendingTimers.clear();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://sim").pathname;
    const method = req.method ?? "GET";
    if (
      this.options.apiKey &&
      path.startsWith("/v1/") &&
      req.headers.authorization !== `Bearer ${this.options.apiKey}`
    ) {
      // vLLM's --api-key middleware guards /v1 and answers exactly this.
      return sendJson(res, 401, { error: "Unauthorized" });
    }
    if (method === "POST" && path === "/v1/completions") return this.#inference("completions", req, res);
    if (method === "POST" && path === "/v1/chat/completions") return this.#inference("chat", req, res);
    if (method === "GET" && path === "/v1/models") return sendJson(res, 200, this.#models());
    if (method === "GET" && path === "/health") {
      res.writeHead(this.#runtime.down ? 503 : 200).end();
      return;
    }
    if (method === "GET" && path === "/metrics") {
      const text = await this.#metrics.registry.metrics();
      res.writeHead(200, { "content-type": this.#metrics.registry.contentType }).end(text);
      return;
    }
    if (path.startsWith("/sim/")) return this.#control(method, path, req, res);
    sendJson(res, 404, { detail: "Not Found" });
  }

  /** `/v1/models`, as vLLM lists them. */
  #models() {
    const created = Math.floor(Date.now() / 1000);
    return {
      object: "list",
      data: this.options.servedModelNames.map((id) => ({
        id,
        object: "model",
        created,
        owned_by: "vllm",
        root: id,
        parent: null,
        max_model_len: this.options.maxModelLen,
      })),
    };
  }

  /** `/sim/stats`, `/sim/stats/reset` and `/sim/config`: the test and bench controls. */
  async #control(method: string, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (method === "GET" && path === "/sim/stats") return sendJson(res, 200, this.#stats);
    if (method === "POST" && path === "/sim/stats/reset") {
      this.resetStats();
      return sendJson(res, 200, this.#stats);
    }
    if (path === "/sim/config" && (method === "GET" || method === "POST")) {
      if (method === "POST") {
        try {
          this.setConfig((await readJson(req, CONFIG_BODY_LIMIT)) as RuntimeConfig);
        } catch (error) {
          const message =
            error instanceof HttpAnswer ? "the body is not valid JSON" : (error as Error).message;
          return sendJson(res, 400, errorBody(400, "BadRequestError", message));
        }
      }
      return sendJson(res, 200, this.#runtime);
    }
    sendJson(res, 404, { detail: "Not Found" });
  }

  async #inference(endpoint: SimCall["endpoint"], req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#stats.requests += 1;
    try {
      await this.#handleInference(endpoint, req, res);
    } catch (error) {
      if (!(error instanceof HttpAnswer)) throw error;
      const status = error.status;
      if (status >= 400 && status < 500 && status !== 429 && !isContextError(error))
        this.#stats.invalidRequests += 1;
      sendJson(res, status, error.body, error.headers);
    }
  }

  /** Validation, failure injection and the context window, then the engine; records the call's status. */
  async #handleInference(
    endpoint: SimCall["endpoint"],
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<number> {
    const request = parseInference(endpoint, await readJson(req, this.options.maxBodyBytes));
    const { body } = request;
    const call: SimCall = {
      endpoint,
      model: body.model,
      prompts: request.prompts.length,
      stream: body.stream === true,
      status: 0,
    };
    recordCall(this.#stats, call);
    try {
      call.status = await this.#answer(request, req, res);
    } catch (error) {
      if (error instanceof HttpAnswer) call.status = error.status;
      throw error;
    }
    return call.status;
  }

  async #answer(request: InferenceRequest, req: IncomingMessage, res: ServerResponse): Promise<number> {
    const { body } = request;
    if (!this.options.servedModelNames.includes(body.model)) {
      throw new HttpAnswer(
        404,
        errorBody(404, "NotFoundError", `The model \`${body.model}\` does not exist.`, "model"),
      );
    }
    const injected = await this.#injectFailure(body.model, req, res);
    if (injected !== undefined) return injected;
    const { promptTokens, maxTokens } = this.#tokenBudget(request);
    const outcome = await runGeneration(
      {
        endpoint: request.endpoint,
        model: body.model,
        prompts: request.prompts,
        promptTokens,
        maxTokens,
        seed: body.seed ?? undefined,
        temperature: body.temperature ?? undefined,
        stream: body.stream === true,
        includeUsage: body.stream_options?.include_usage === true,
      },
      res,
      {
        engine: this.#engine,
        metrics: this.#metrics,
        onPeak: () => this.#notePeaks(),
        retryAfterSeconds: this.#runtime.retryAfterSeconds,
        maxWaitingQueueLength: this.options.maxWaitingQueueLength,
      },
    ).catch((error: unknown) => {
      if (error instanceof HttpAnswer && error.status === 429) this.#stats.queueFull += 1;
      throw error;
    });
    if (outcome.status === 200) {
      this.#stats.succeeded += 1;
      this.#stats.promptTokens += outcome.usage.prompt_tokens;
      this.#stats.completionTokens += outcome.usage.completion_tokens;
    }
    return outcome.status;
  }

  /**
   * Rolls the failure dice: throws the injected error answer, or returns the status of a dropped
   * connection (0) or of a client that gave up on a slow answer (499); undefined goes on normally.
   */
  async #injectFailure(
    model: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<number | undefined> {
    const failure = drawFailure(this.#runtime, model, this.#dice);
    if (!failure) return undefined;
    this.#stats.failuresInjected[failure] += 1;
    if (failure === "dropped") {
      req.socket.destroy();
      return 0;
    }
    if (failure !== "timeout") throw failureAnswer(failure, this.#runtime.retryAfterSeconds);
    // A slow answer: the client's timeout should fire first; if it waits, it gets a normal answer.
    if (await delayUnlessClosed(this.#runtime.slowResponseMs, res, this.#pendingTimers)) return 499;
    return undefined;
  }

  /** Prompt tokens and max_tokens per prompt; vLLM's 400 when they do not fit the context window. */
  #tokenBudget({ endpoint, body, prompts }: InferenceRequest): {
    promptTokens: number[];
    maxTokens: number[];
  } {
    const maxModelLen = this.options.maxModelLen;
    const promptTokens =
      endpoint === "completions"
        ? prompts.map((p) => countTokens(p) + BOS_TOKENS)
        : [countChatTokens((body as ChatRequestBody).messages)];
    const requested = body.max_tokens ?? body.max_completion_tokens ?? undefined;
    const maxTokens = promptTokens.map(
      (p) =>
        requested ??
        (endpoint === "completions" ? COMPLETIONS_DEFAULT_MAX_TOKENS : Math.max(1, maxModelLen - p)),
    );
    promptTokens.forEach((p, i) => {
      if (p + maxTokens[i]! > maxModelLen) {
        this.#stats.contextLengthErrors += 1;
        throw new HttpAnswer(
          400,
          errorBody(400, "BadRequestError", contextLengthMessage(maxModelLen, p, maxTokens[i]!)),
        );
      }
    });
    return { promptTokens, maxTokens };
  }

  #notePeaks(): void {
    this.#stats.maxRunning = Math.max(this.#stats.maxRunning, this.#engine.numRunning);
    this.#stats.maxWaiting = Math.max(this.#stats.maxWaiting, this.#engine.numWaiting);
  }
}

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
  const sim = new SimServer(opts);
  await sim.listen();
  return sim;
}

function isContextError(answer: HttpAnswer): boolean {
  const body = answer.body as { error?: { message?: string } };
  return answer.status === 400 && /maximum context length/.test(body.error?.message ?? "");
}
