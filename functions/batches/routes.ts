import { LIMITS } from "../../events/index.ts";
import { type OpenAiRequest, type OpenAiResponse, openAiRoute } from "../files/http.ts";
import { NotFoundError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { BatchApi } from "./deps.ts";
import { LazyBatchApi } from "./lazy.ts";

/**
 * A router handler for one Files or Batches route: OpenAI's shapes in and out. Without a Batch
 * API (a handler built for tests of the other routes), the route answers 404 in OpenAI's shape.
 *
 * @example { method: "GET", path: "/v1/batches/{id}", handler: batchRoute(api, (a, req) => a.batches.get(req), logger) }
 */
export function batchRoute(
  api: BatchApi | LazyBatchApi | undefined,
  fn: (api: BatchApi, req: OpenAiRequest) => Promise<OpenAiResponse>,
  logger?: Logger,
) {
  return openAiRoute(async (req) => {
    if (!api) throw new NotFoundError("the Files and Batches APIs are not enabled on this server");
    return fn(api instanceof LazyBatchApi ? await api.get() : api, req);
  }, logger);
}

/**
 * The largest body a route reads: `POST /v1/files` takes uploads up to DEEPQUEUE_FILES_MAX_BYTES,
 * every other route the API's 256 KiB (serveHttp refuses more while reading).
 */
export function routeBodyLimit(api: BatchApi | LazyBatchApi | undefined) {
  const files = api instanceof LazyBatchApi ? api.maxFileBytes : api?.files.maxBodyBytes;
  return (request: { method: string; path: string }): number =>
    files !== undefined && request.method === "POST" && request.path === "/v1/files"
      ? files
      : LIMITS.bodyBytes;
}
