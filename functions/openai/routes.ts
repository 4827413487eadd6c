import type { SQSClient } from "@aws-sdk/client-sqs";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { type RequestRecord, TERMINAL_STATUSES } from "../../events/index.ts";
import { type ApiRequest, type ApiResponse, toApiRequest } from "../ingest/api-request.ts";
import { UnavailableError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { DEFAULT_PREFIX } from "../shared/names.ts";
import { OPENAI_ROUTES_DEFAULTS, type OpenAiRoutesSettings } from "./config.ts";
import { InvalidParamError, openAiError } from "./errors.ts";
import { AnswerTimeoutError, failedRequestResponse, ModelNotFoundError } from "./failures.ts";
import { type ReplyInbox, ReplyQueue, type ReplyQueueOptions } from "./reply-queue.ts";
import { ReplyWait } from "./reply-wait.ts";
import { type MappedBody, mapChatBody, mapCompletionBody } from "./request-body.ts";
import { type CompletionKind, completionBody, headOf, StreamChunks } from "./responses.ts";
import { completionStream, streamEnding } from "./stream.ts";

type Event = APIGatewayProxyEventV2;
type Result = APIGatewayProxyStructuredResultV2;

/** An HTTP request as ingest's logic takes it. */
export type IngestRequest = ApiRequest;

/** What the routes use of ingest: the same admission as `POST /v1/requests`, the same read. */
export interface IngestPort {
  submit(req: IngestRequest): Promise<ApiResponse>;
  getRequest(req: IngestRequest): Promise<ApiResponse>;
}

export interface OpenAiRoutesOptions {
  ingest: IngestPort;
  /** Who is calling, for routes that submit nothing (`GET /v1/models`) and bodies refused here. */
  auth: {
    authenticate(
      headers: Record<string, string | undefined>,
      body: string,
      options: { signed: boolean },
    ): Promise<{ tenant: { tenant: string } }>;
  };
  /**
   * ingest's abuse budget (functions/ingest/admission.ts): a body refused here costs the tenant
   * as one refused by `POST /v1/requests` does, and a spent budget is a 429 before anything else.
   */
  admission?: { gate(tenant: string): void; charge(tenant: string, error: unknown, bodyBytes: number): void };
  replies: ReplyInbox;
  settings: OpenAiRoutesSettings;
  logger: Logger;
}

/** A non-streamed answer's wait, settled: the record when it finished in time. */
interface Waited {
  record?: RequestRecord;
  claimChecked?: boolean;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Result {
  return {
    statusCode: status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
    body: JSON.stringify(body),
  };
}

function errorResult(error: unknown, logger: Logger): Result {
  const param =
    error instanceof InvalidParamError || error instanceof ModelNotFoundError ? error.param : null;
  const out = openAiError(error, param);
  if (error instanceof ModelNotFoundError) out.body.error.code = "model_not_found";
  if (out.status >= 500 && !(error instanceof AnswerTimeoutError)) {
    logger.error({ err: error }, "OpenAI-compatible route failed");
  }
  return json(out.status, out.body, out.headers);
}

/** A model as `GET /v1/models` lists it. */
function modelObject(id: string) {
  return {
    id,
    object: "model",
    created: OPENAI_ROUTES_DEFAULTS.modelsCreated,
    owned_by: OPENAI_ROUTES_DEFAULTS.ownedBy,
  };
}

/** Headers of a server-sent events answer; no proxy buffering, no caching. */
function sseHeaders(id: string): Record<string, string> {
  return {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-request-id": id,
    "x-accel-buffering": "no",
  };
}

function isTerminal(record: RequestRecord | undefined): record is RequestRecord {
  return record !== undefined && TERMINAL_STATUSES.includes(record.status);
}

/**
 * The OpenAI-compatible routes of ingest (docs/openai.md): `POST /v1/chat/completions`,
 * `POST /v1/completions` and `GET /v1/models`. A completion is admitted exactly as
 * `POST /v1/requests` admits a request (auth, rate limits, quotas, token counting) and enqueued
 * with this replica's reply queue; the caller then waits on that queue (no polling) for the
 * answer, streamed as server-sent events with `stream: true`. Every error has OpenAI's shape.
 *
 * @example
 * const routes = new OpenAiRoutes({ ingest, auth, replies, settings, logger });
 * { method: "POST", path: "/v1/chat/completions", handler: routes.chatCompletions }
 */
export class OpenAiRoutes {
  readonly #deps: OpenAiRoutesOptions;
  readonly #models: string[];
  readonly #deadlineSeconds: number;

  constructor(deps: OpenAiRoutesOptions) {
    this.#deps = deps;
    this.#models = [
      deps.settings.model,
      ...(deps.settings.fallbackModel ? [deps.settings.fallbackModel] : []),
    ];
    this.#deadlineSeconds = deps.settings.deadlineSeconds ?? OPENAI_ROUTES_DEFAULTS.deadlineSeconds;
  }

  /** `POST /v1/chat/completions`. */
  readonly chatCompletions = (event: Event, context?: Context): Promise<Result> =>
    this.#complete("chat", event, context);

  /** `POST /v1/completions`. */
  readonly completions = (event: Event, context?: Context): Promise<Result> =>
    this.#complete("text", event, context);

  /** `GET /v1/models`: the models a tenant may name (the configured model and its fallback). */
  readonly models = async (event: Event): Promise<Result> => {
    try {
      await this.#deps.auth.authenticate(toApiRequest(event).headers, "", { signed: false });
      return json(200, { object: "list", data: this.#models.map(modelObject) });
    } catch (error) {
      return errorResult(error, this.#deps.logger);
    }
  };

  /** `GET /v1/models/{model}`: one of them, else OpenAI's 404 `model_not_found`. */
  readonly model = async (event: Event): Promise<Result> => {
    try {
      const req = toApiRequest(event);
      await this.#deps.auth.authenticate(req.headers, "", { signed: false });
      const id = req.params.model ?? "";
      if (!this.#models.includes(id)) throw new ModelNotFoundError(id);
      return json(200, modelObject(id));
    } catch (error) {
      return errorResult(error, this.#deps.logger);
    }
  };

  /** Stops the reply queue's loop and deletes the queue. */
  close(): Promise<void> {
    return this.#deps.replies.close();
  }

  async #complete(kind: CompletionKind, event: Event, context?: Context): Promise<Result> {
    const req = toApiRequest(event);
    const started = Date.now();
    try {
      const mapped = await this.#map(kind, req);
      const queueUrl = await this.#deps.replies.url().catch((error: unknown) => {
        throw new UnavailableError("this replica cannot make its reply queue; nothing was accepted", {
          cause: error,
        });
      });
      const accepted = await this.#deps.ingest.submit({
        ...req,
        body: JSON.stringify(mapped.submit),
        reply: { queue_url: queueUrl, stream: mapped.stream },
      });
      const id = (accepted.body as { id: string }).id;
      // A replayed Idempotency-Key: the first request's replies went to the replica that took it.
      if (accepted.status !== 202) return this.#answer(kind, mapped, id, await this.#readOnce(req, id));
      const until = started + this.#deadlineSeconds * 1000 + OPENAI_ROUTES_DEFAULTS.graceMs;
      const wait = new ReplyWait(this.#deps.replies, id);
      if (mapped.stream) return this.#stream(kind, mapped, wait, { id, until, req });
      const remaining = context?.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY;
      const answerBy = Math.min(until, Date.now() + remaining - OPENAI_ROUTES_DEFAULTS.responseMarginMs);
      const { record, claimChecked } = await this.#await(wait, answerBy);
      // No answer in time, or one too large for a message: the record as GET /v1/requests/{id} reads it.
      const final = record && !claimChecked ? record : ((await this.#readOnce(req, id)) ?? record);
      return this.#answer(kind, mapped, id, final);
    } catch (error) {
      return errorResult(error, this.#deps.logger);
    }
  }

  /**
   * The answer from a record read at once (no reply to wait for): the completion, or the request's
   * failure, or a 504 when it is not finished; streamed as one piece when `stream` was asked.
   */
  #answer(kind: CompletionKind, mapped: MappedBody, id: string, record: RequestRecord | undefined): Result {
    if (!isTerminal(record)) throw new AnswerTimeoutError(id);
    if (mapped.stream) {
      const chunks = new StreamChunks(kind, headOf(record), { includeUsage: mapped.includeUsage });
      return {
        statusCode: 200,
        headers: sseHeaders(id),
        body: chunks.start() + streamEnding(chunks, record, id),
      };
    }
    if (record.status === "failed") {
      const failed = failedRequestResponse(record);
      return json(failed.status, failed.body, { ...failed.headers, "x-request-id": id });
    }
    return json(200, completionBody(kind, record), { "x-request-id": id });
  }

  /**
   * The body mapped to a submission, and the model checked. A body that is refused is refused
   * after the credentials are checked, as OpenAI does: a caller with a bad key learns nothing else.
   */
  async #map(kind: CompletionKind, req: IngestRequest): Promise<MappedBody> {
    try {
      const mapped =
        kind === "chat"
          ? mapChatBody(req.body, { deadlineSeconds: this.#deadlineSeconds })
          : mapCompletionBody(req.body, {
              deadlineSeconds: this.#deadlineSeconds,
              maxTokens: OPENAI_ROUTES_DEFAULTS.completionMaxTokens,
            });
      const model = mapped.submit.model ?? this.#deps.settings.model;
      if (!this.#models.includes(model)) throw new ModelNotFoundError(model);
      return mapped;
    } catch (error) {
      const { tenant } = (await this.#deps.auth.authenticate(req.headers, req.body, { signed: false }))
        .tenant;
      this.#deps.admission?.gate(tenant);
      this.#deps.admission?.charge(tenant, error, Buffer.byteLength(req.body));
      throw error;
    }
  }

  async #await(wait: ReplyWait, until: number): Promise<Waited> {
    try {
      for (;;) {
        const next = await wait.next(until);
        if (next.type === "done") return next;
        if (next.type === "timeout") return {};
      }
    } finally {
      wait.close();
    }
  }

  /** The record as `GET /v1/requests/{id}` reads it, once (the answer did not come in time). */
  async #readOnce(req: IngestRequest, id: string): Promise<RequestRecord | undefined> {
    try {
      const read = await this.#deps.ingest.getRequest({ headers: req.headers, body: "", params: { id } });
      return read.body as RequestRecord;
    } catch (error) {
      this.#deps.logger.warn(
        { err: error, request_id: id },
        "could not read the record of an unanswered request",
      );
      return undefined;
    }
  }

  #stream(
    kind: CompletionKind,
    mapped: MappedBody,
    wait: ReplyWait,
    request: { id: string; until: number; req: IngestRequest },
  ): Result {
    const body = completionStream({
      kind,
      wait,
      until: request.until,
      includeUsage: mapped.includeUsage,
      head: headOf({
        id: request.id,
        model: mapped.submit.model ?? this.#deps.settings.model,
        created_at: new Date().toISOString(),
        status: "queued",
      }),
      readOnce: () => this.#readOnce(request.req, request.id),
      logger: this.#deps.logger,
    });
    // A streaming body (functions/runtime/http.ts writes it chunk by chunk), as middy's
    // streamifyResponse takes one: the status and headers first, then the body.
    return {
      statusCode: 200,
      headers: sseHeaders(request.id),
      body: body as unknown as string,
    };
  }
}

/** What ingest's dependencies give the routes (functions/ingest/ingest.ts `IngestDeps`). */
export interface OpenAiIngestDeps {
  sqs: SQSClient;
  auth: OpenAiRoutesOptions["auth"];
  admission?: OpenAiRoutesOptions["admission"];
  logger: Logger;
  /** @default DEFAULT_PREFIX */
  prefix?: string;
  defaultModel: string;
}

/**
 * The routes with this replica's reply queue (made on the first completion), for ingest's router.
 * `settings` default to the configured model alone.
 *
 * @example const openai = createOpenAiRoutes(ingest, deps, openAiSettingsFromEnv()); await openai.close();
 */
export function createOpenAiRoutes(
  ingest: IngestPort,
  deps: OpenAiIngestDeps,
  settings: OpenAiRoutesSettings = { model: deps.defaultModel },
  replyOptions: Partial<ReplyQueueOptions> = {},
): OpenAiRoutes {
  const replies = new ReplyQueue({
    sqs: deps.sqs,
    prefix: deps.prefix ?? DEFAULT_PREFIX,
    logger: deps.logger,
    ...replyOptions,
  });
  return new OpenAiRoutes({
    ingest,
    auth: deps.auth,
    ...(deps.admission ? { admission: deps.admission } : {}),
    replies,
    settings,
    logger: deps.logger,
  });
}
