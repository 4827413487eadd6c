import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { toApiRequest } from "../ingest/api-request.ts";
import { InvalidParamError, openAiError } from "../openai/errors.ts";
import type { Logger } from "../shared/logger.ts";

/** An HTTP request on an OpenAI-compatible route: lower-case headers, path and query parameters. */
export interface OpenAiRequest {
  headers: Record<string, string | undefined>;
  params: Record<string, string | undefined>;
  query: Record<string, string | undefined>;
  /** The body as text (UTF-8; a base64 event body is decoded). */
  text: string;
  /** The event, for what needs more (a multipart parser). */
  event: APIGatewayProxyEventV2;
}

/** A response: `body` is JSON unless `raw` (sent as it is, with its own content type). */
export interface OpenAiResponse {
  status: number;
  body?: unknown;
  raw?: { text: string | Buffer; contentType: string };
}

/**
 * Wraps the logic of an OpenAI-compatible route as a router handler: the event becomes an
 * `OpenAiRequest`, the answer a payload v2 result, and any error OpenAI's error body
 * (`{"error": {"message", "type", "param", "code"}}`) so the official clients raise their own classes.
 *
 * @example { method: "GET", path: "/v1/files/{id}", handler: openAiRoute((req) => files.get(req), logger) }
 */
export function openAiRoute(fn: (req: OpenAiRequest) => Promise<OpenAiResponse>, logger?: Logger) {
  return async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
    try {
      return toResult(await fn(toOpenAiRequest(event)));
    } catch (error) {
      const shaped = openAiError(error);
      if (shaped.status >= 500) logger?.error({ err: error, path: event.rawPath }, "OpenAI route failed");
      return {
        statusCode: shaped.status,
        headers: { "content-type": "application/json", "cache-control": "no-store", ...shaped.headers },
        body: JSON.stringify(shaped.body),
      };
    }
  };
}

function toOpenAiRequest(event: APIGatewayProxyEventV2): OpenAiRequest {
  const { headers, params, body } = toApiRequest(event);
  return { headers, params, query: event.queryStringParameters ?? {}, text: body, event };
}

function toResult(response: OpenAiResponse): APIGatewayProxyStructuredResultV2 {
  const headers = { "cache-control": "no-store" };
  if (response.raw) {
    const binary = Buffer.isBuffer(response.raw.text);
    return {
      statusCode: response.status,
      headers: { ...headers, "content-type": response.raw.contentType },
      body: binary ? (response.raw.text as Buffer).toString("base64") : (response.raw.text as string),
      ...(binary ? { isBase64Encoded: true } : {}),
    };
  }
  return {
    statusCode: response.status,
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(response.body),
  };
}

/**
 * OpenAI's list parameters: `limit` (1-`max`, default `fallback`), `after` (an id), `order`.
 *
 * @example listQuery(req.query, { fallback: 20, max: 100 })
 */
export function listQuery(
  query: Record<string, string | undefined>,
  bounds: { fallback: number; max: number },
): { limit: number; after?: string; order?: "asc" | "desc" } {
  const limit = query.limit === undefined ? bounds.fallback : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > bounds.max) {
    throw new InvalidParamError("limit", `limit: must be an integer from 1 to ${bounds.max}`);
  }
  const order = query.order;
  if (order !== undefined && order !== "asc" && order !== "desc") {
    throw new InvalidParamError("order", 'order: must be "asc" or "desc"');
  }
  return { limit, ...(query.after ? { after: query.after } : {}), ...(order ? { order } : {}) };
}

/**
 * OpenAI's cursor list body: `{"object": "list", "data", "first_id", "last_id", "has_more"}`.
 *
 * @example listResponse(page.data.map(toFileObject), page.has_more)
 */
export function listResponse<T extends { id: string }>(data: T[], hasMore: boolean): OpenAiResponse {
  return {
    status: 200,
    body: {
      object: "list",
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: hasMore,
    },
  };
}
