import type { APIGatewayProxyEventV2 } from "aws-lambda";
import type { AcceptedRequest } from "../../events/index.ts";

// Apart from ingest.ts: the OpenAI-compatible routes and the Files API (also loaded by the batch
// worker) take requests in this shape without loading ingest's logic and metrics.

/** An HTTP request as the logic sees it: lower-case headers, the raw body text, route parameters. */
export interface ApiRequest {
  headers: Record<string, string | undefined>;
  body: string;
  params: Record<string, string | undefined>;
  /** Set by the OpenAI-compatible routes (functions/openai), never from the wire: where the answer goes. */
  reply?: AcceptedRequest["reply"];
}

/** An API Gateway (payload v2) event as the logic sees it: a base64 body decoded to text. */
export function toApiRequest(event: APIGatewayProxyEventV2): ApiRequest {
  const raw = event.body ?? "";
  return {
    headers: event.headers ?? {},
    body: event.isBase64Encoded ? Buffer.from(raw, "base64").toString("utf8") : raw,
    params: event.pathParameters ?? {},
  };
}

/** An HTTP response before serialization: `body` is JSON unless it is a string. */
export interface ApiResponse {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}
