import middy from "@middy/core";
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import httpRouterHandler from "@middy/http-router";
import httpSecurityHeaders from "@middy/http-security-headers";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { openApiJson } from "../../events/openapi.ts";
import type { BatchApi } from "../batches/deps.ts";
import { LazyBatchApi } from "../batches/lazy.ts";
import { batchRoute, routeBodyLimit } from "../batches/routes.ts";
import {
  COMPLETION_PATHS,
  completionRequestTimeoutMs,
  type OpenAiRoutesSettings,
  openAiSettingsFromEnv,
} from "../openai/config.ts";
import { createOpenAiRoutes } from "../openai/routes.ts";
import { HTTP_DEFAULTS } from "../runtime/http.ts";
import { toApiRequest } from "./api-request.ts";
import { loadIngestEnv } from "./config.ts";
import { ingestDeps } from "./deps.ts";
import { errorResponseMiddleware } from "./error-response.ts";
import {
  type ApiRequest,
  type ApiResponse,
  type Ingest,
  IngestApi,
  type IngestOptions,
  type PreflightRequest,
} from "./ingest.ts";

type Event = APIGatewayProxyEventV2;
type Result = APIGatewayProxyStructuredResultV2;

/**
 * middy's defaults are written for HTML pages; an API answering JSON needs the
 * OWASP REST set (https://cheatsheetseries.owasp.org/cheatsheets/REST_Security_Cheat_Sheet.html#security-headers):
 * nothing may be framed or loaded from it, no sniffing, HSTS. The 1.3 KB
 * Permissions-Policy of browser features is dropped from every response.
 */
const API_SECURITY_HEADERS: Parameters<typeof httpSecurityHeaders>[0] = {
  // Merged over middy's defaults; "" drops a directive (no report endpoint exists here).
  contentSecurityPolicy: { "default-src": "'none'", "report-to": "", "require-trusted-types-for": "" },
  permissionsPolicy: false,
};

function toResult(response: ApiResponse): Result {
  const text = typeof response.body === "string";
  return {
    statusCode: response.status,
    headers: {
      "content-type": text ? "text/plain; charset=utf-8" : "application/json",
      // Records change as requests progress: never serve one from a cache.
      "cache-control": "no-store",
      ...response.headers,
    },
    body: text ? (response.body as string) : JSON.stringify(response.body),
  };
}

/** `GET /openapi.json`: this API's OpenAPI 3.1 document (docs/openapi.json), built once; no auth. */
function openApiResult(): Result {
  return {
    statusCode: 200,
    headers: { "content-type": "application/json", "cache-control": "public, max-age=300" },
    body: openApiJson(),
  };
}

/**
 * The ingest function for API Gateway HTTP API (payload v2) events: the
 * routes of docs/api.md#http-api behind middy's header normalizer, router and security headers, with
 * every error as `{"error": {"code", "message"}}`. `/metrics` is routed only
 * with `publicMetrics`; `deepqueue serve ingest` serves it on the metrics port.
 * The handler carries serveHttp's `preflight` and the process's `close`.
 *
 * @example const handler = createIngestHandler(ingestDepsFromEnv());
 */
export function createIngestHandler(
  deps: IngestOptions,
  options: {
    publicMetrics?: boolean;
    openai?: OpenAiRoutesSettings;
    batchApi?: BatchApi | LazyBatchApi;
  } = {},
) {
  const ingest: Ingest = new IngestApi(deps);
  const batchApi = (fn: Parameters<typeof batchRoute>[1]) => batchRoute(options.batchApi, fn, deps.logger);
  const openai = createOpenAiRoutes(ingest, deps, options.openai);
  const route = (fn: (req: ApiRequest) => Promise<ApiResponse>) => async (event: Event) =>
    toResult(await fn(toApiRequest(event)));
  const router = httpRouterHandler<Event, Result>([
    { method: "POST", path: "/v1/requests", handler: route((req) => ingest.submit(req)) },
    { method: "GET", path: "/v1/requests/{id}", handler: route((req) => ingest.getRequest(req)) },
    { method: "GET", path: "/v1/conversations/{id}", handler: route((req) => ingest.getConversation(req)) },
    { method: "POST", path: "/v1/chat/completions", handler: openai.chatCompletions },
    { method: "POST", path: "/v1/completions", handler: openai.completions },
    { method: "GET", path: "/v1/models", handler: openai.models },
    { method: "GET", path: "/v1/models/{model}", handler: openai.model },
    // OpenAI's Files and Batch APIs (docs/openai.md), in OpenAI's shapes and errors.
    { method: "POST", path: "/v1/files", handler: batchApi((a, req) => a.files.create(req)) },
    { method: "GET", path: "/v1/files", handler: batchApi((a, req) => a.files.list(req)) },
    { method: "GET", path: "/v1/files/{id}", handler: batchApi((a, req) => a.files.get(req)) },
    { method: "GET", path: "/v1/files/{id}/content", handler: batchApi((a, req) => a.files.content(req)) },
    { method: "DELETE", path: "/v1/files/{id}", handler: batchApi((a, req) => a.files.delete(req)) },
    { method: "POST", path: "/v1/batches", handler: batchApi((a, req) => a.batches.create(req)) },
    { method: "GET", path: "/v1/batches", handler: batchApi((a, req) => a.batches.list(req)) },
    { method: "GET", path: "/v1/batches/{id}", handler: batchApi((a, req) => a.batches.get(req)) },
    { method: "POST", path: "/v1/batches/{id}/cancel", handler: batchApi((a, req) => a.batches.cancel(req)) },
    { method: "GET", path: "/healthz", handler: route(() => ingest.health()) },
    { method: "GET", path: "/openapi.json", handler: async () => openApiResult() },
    // Metrics name tenants and error rates: served on the metrics port (not routed
    // publicly), here only when DEEPQUEUE_INGEST_PUBLIC_METRICS asks for it.
    ...(options.publicMetrics
      ? [{ method: "GET" as const, path: "/metrics", handler: route(() => ingest.metrics()) }]
      : []),
  ]);
  const handler = middy<Event, Result>(router)
    .use(httpHeaderNormalizer())
    .use(httpSecurityHeaders(API_SECURITY_HEADERS))
    .use(errorResponseMiddleware({ logger: deps.logger }));
  // close(): what ingest holds in memory is written, and the replica's reply queue (docs/openai.md) deleted.
  return Object.assign(handler, {
    preflight: (request: PreflightRequest) => ingest.preflight(request),
    bodyLimit: routeBodyLimit(options.batchApi),
    // A completion's caller waits on the line for the answer: its request lasts up to the chat deadline.
    requestTimeout: (request: { method: string; path: string }) =>
      COMPLETION_PATHS.includes(request.path)
        ? completionRequestTimeoutMs(options.openai)
        : HTTP_DEFAULTS.requestTimeoutMs,
    close: async () => {
      await openai.close();
      await ingest.close();
    },
  });
}

/**
 * The ingest handler with its dependencies from `source` (default `process.env`),
 * tokenizer loaded: what `deepqueue serve ingest` and `dev` run behind serveHttp.
 *
 * @example const { url, close } = await serveHttp(createIngestFromEnv(), { port: 8080 });
 */
export function createIngestFromEnv(source: Record<string, string | undefined> = process.env) {
  const env = loadIngestEnv(source);
  const deps = ingestDeps(env);
  return createIngestHandler(deps, {
    publicMetrics: env.DEEPQUEUE_INGEST_PUBLIC_METRICS,
    openai: openAiSettingsFromEnv(source),
    // Built on the first Files or Batches request: ingest starts without the S3 SDK.
    batchApi: new LazyBatchApi(source, { sqs: deps.sqs, auth: deps.auth, logger: deps.logger }),
  });
}

let lambdaHandler: ReturnType<typeof createIngestHandler> | undefined;

/**
 * The Lambda entry point: dependencies built once per container, on the first
 * event rather than at import, so that importing this module (the CLI, `dev`)
 * never parses an environment it did not mean to.
 */
export const handler = (event: Event, context: Context) => {
  lambdaHandler ??= createIngestFromEnv();
  return lambdaHandler(event, context);
};
