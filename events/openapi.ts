import { z } from "zod";
import { API_ERRORS, type ApiErrorCode } from "./api-errors.ts";
import { chatMessageSchema, LIMITS } from "./common.ts";
import { conversationSchema } from "./conversation.ts";
import { healthFailedSchema, healthOkSchema } from "./health.ts";
import { resultEventSchema } from "./messages.ts";
import { BATCH_API_INPUT_SCHEMAS, BATCH_API_OUTPUT_SCHEMAS, batchApiPaths } from "./openapi-batches.ts";
import { OPENAI_PATHS, OPENAI_SCHEMAS, OPENAI_TAG } from "./openapi-openai.ts";
import { errorBodySchema, requestRecordSchema } from "./request-record.ts";
import { acceptedResponseSchema, submitBodySchema } from "./submit.ts";

/**
 * The OpenAPI 3.1 description of ingest's HTTP API, built from the zod
 * schemas of this folder (zod's own JSON Schema output, draft 2020-12, which
 * is OpenAPI 3.1's schema dialect). Committed as `docs/openapi.json`
 * (`npm run schemas`) and served by ingest at `GET /openapi.json`.
 */

type Json = Record<string, unknown>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** Bodies clients send (defaults optional) and bodies the API answers (defaults filled). */
const INPUT_SCHEMAS = {
  SubmitBody: submitBodySchema,
  ChatMessage: chatMessageSchema,
  ...BATCH_API_INPUT_SCHEMAS,
} as const;
const OUTPUT_SCHEMAS = {
  ChatMessage: chatMessageSchema,
  AcceptedResponse: acceptedResponseSchema,
  RequestRecord: requestRecordSchema,
  Conversation: conversationSchema,
  ErrorBody: errorBodySchema,
  ResultEvent: resultEventSchema,
  HealthOk: healthOkSchema,
  HealthFailed: healthFailedSchema,
  ...BATCH_API_OUTPUT_SCHEMAS,
} as const;

function componentSchemas(io: "input" | "output", schemas: Record<string, z.ZodType>): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const { schemas: out } = z.toJSONSchema(registry, {
    io,
    unrepresentable: "any",
    uri: (id) => `#/components/schemas/${id}`,
  });
  // Components are addressed by their place in the document: no `$id`; the dialect is OpenAPI 3.1's default.
  return Object.fromEntries(
    Object.entries(out).map(([id, schema]) => {
      const { $schema: _dialect, $id: _id, ...rest } = schema as Json;
      return [id, rest];
    }),
  );
}

const retryAfter = {
  description: "Seconds to wait before retrying.",
  schema: { type: "integer", minimum: 1 },
};

/** One status's error response, its `code` narrowed to the codes this route answers with at that status. */
function errorResponse(codes: ApiErrorCode[]): Json {
  const retry = codes.some((c) => ["quota_exceeded", "rate_limited", "idempotency_in_progress"].includes(c));
  return {
    description: codes.map((c) => `\`${c}\`: ${API_ERRORS[c].when}.`).join(" "),
    ...(retry ? { headers: { "Retry-After": { ...retryAfter, required: true } } } : {}),
    content: {
      "application/json": {
        schema: {
          allOf: [
            ref("ErrorBody"),
            {
              type: "object",
              properties: { error: { type: "object", properties: { code: { enum: codes } } } },
            },
          ],
        },
        example: { error: { code: codes[0], message: API_ERRORS[codes[0]!].when } },
      },
    },
  };
}

/** The error responses of a route, grouped by status. */
function errorResponses(codes: ApiErrorCode[]): Record<string, Json> {
  const byStatus = new Map<number, ApiErrorCode[]>();
  for (const code of codes) {
    const status = API_ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries([...byStatus].map(([status, c]) => [String(status), errorResponse(c)]));
}

/** Errors every authenticated read can answer. */
const READ_ERRORS: ApiErrorCode[] = [
  "unauthorized",
  "not_found",
  "rate_limited",
  "internal_error",
  "unavailable",
];

const idParameter = (what: string, pattern?: string) => ({
  name: "id",
  in: "path",
  required: true,
  description: what,
  schema: { type: "string", ...(pattern ? { pattern } : {}) },
});

const signatureHeaders = (required: boolean, description: Record<string, string>) =>
  (["webhook-id", "webhook-timestamp", "webhook-signature"] as const).map((name) => ({
    name,
    in: "header",
    required,
    description: description[name],
    schema: { type: "string" },
  }));

const SIGNED_REQUEST_HEADERS = {
  "webhook-id": "Standard Webhooks: a unique id per attempt; each is accepted once.",
  "webhook-timestamp": "Standard Webhooks: Unix seconds, at most 5 minutes off.",
  "webhook-signature":
    'Standard Webhooks: `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">` keyed by the tenant\'s `whsec_` secret. Required by tenants that require signatures; checked whenever sent.',
};

const CALLBACK_HEADERS = {
  "webhook-id": "The event id, the same on every retry: dedupe on it.",
  "webhook-timestamp": "Unix seconds of this attempt.",
  "webhook-signature":
    'One `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">` per active secret of the tenant, space-separated (two during a rotation).',
};

const READ_SECURITY = [{ apiKey: [] }, { jwt: [] }];

/**
 * The OpenAPI 3.1 document of ingest's HTTP API.
 *
 * @example writeFileSync("docs/openapi.json", JSON.stringify(openApiDocument(), null, 2));
 */
export function openApiDocument(): Json {
  const input = componentSchemas("input", INPUT_SCHEMAS);
  const output = componentSchemas("output", OUTPUT_SCHEMAS);
  return {
    openapi: "3.1.0",
    info: {
      title: "deepqueue ingest API",
      version: "v1",
      summary: "Submit prompts to an event-driven inference pipeline and read their results.",
      description:
        "Producers submit requests (202 Accepted: durable, queued) and poll them, or receive the result as a signed webhook; consumers may also read the tenant's result queue. The prose reference is docs/api.md.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    tags: [
      { name: "requests", description: "Submit a prompt and read its record." },
      { name: "conversations", description: "Stored multi-turn conversations." },
      OPENAI_TAG,
      {
        name: "batches",
        description:
          "OpenAI's Files and Batch APIs (docs/openai.md): OpenAI's shapes and error body, for the official OpenAI clients.",
      },
      {
        name: "operations",
        description:
          "Health and this document; no authentication. Prometheus metrics are served on the metrics port (9090), not here.",
      },
    ],
    security: READ_SECURITY,
    paths: {
      "/v1/requests": {
        post: {
          operationId: "submitRequest",
          tags: ["requests"],
          summary: "Submit a request",
          description: `Queues one prompt (or chat) for the model. A 202 means durable: the record is written and the message is queued. The body is at most ${LIMITS.bodyBytes} bytes and unknown fields are refused.`,
          security: [
            ...READ_SECURITY,
            { apiKey: [], webhookSignature: [] },
            { jwt: [], webhookSignature: [] },
          ],
          parameters: [
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              description:
                "Scoped to the tenant and remembered for 24 hours: the same key and body return the first request's id (200); a different body is 422 idempotency_key_reused; while the first is still being accepted, 409 idempotency_in_progress.",
              schema: { type: "string", minLength: 1, maxLength: LIMITS.idempotencyKeyLength },
            },
            {
              name: "traceparent",
              in: "header",
              required: false,
              description: "W3C Trace Context: the request joins this trace on every queue message.",
              schema: { type: "string", pattern: "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$" },
            },
            ...signatureHeaders(false, SIGNED_REQUEST_HEADERS),
          ],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: ref("SubmitBody"),
                examples: {
                  prompt: {
                    summary: "A one-shot prompt",
                    value: {
                      prompt: "Explain idempotency keys in one sentence.",
                      max_tokens: 128,
                      temperature: 0,
                    },
                  },
                  chat: {
                    summary: "Chat messages in a conversation, with a callback",
                    value: {
                      messages: [
                        { role: "system", content: "You are terse." },
                        { role: "user", content: "Name three message queues." },
                      ],
                      conversation_id: "support-7731",
                      callback_url: "https://hooks.example.com/deepqueue",
                      metadata: { ticket: "T-1042" },
                    },
                  },
                },
              },
            },
          },
          responses: {
            "202": {
              description: "Accepted: the record is written and the request is queued.",
              headers: { Location: { description: "The status_url.", schema: { type: "string" } } },
              content: {
                "application/json": {
                  schema: ref("AcceptedResponse"),
                  example: {
                    id: "req_01a2174265f27627aedf90ef48d03199",
                    status: "queued",
                    status_url: "/v1/requests/req_01a2174265f27627aedf90ef48d03199",
                  },
                },
              },
            },
            "200": {
              description:
                "An idempotent replay: this Idempotency-Key and body were accepted before; nothing new was created.",
              headers: { Location: { description: "The status_url.", schema: { type: "string" } } },
              content: { "application/json": { schema: ref("AcceptedResponse") } },
            },
            ...errorResponses([
              "invalid_request",
              "prompt_too_long",
              "invalid_callback_url",
              "unauthorized",
              "idempotency_in_progress",
              "payload_too_large",
              "idempotency_key_reused",
              "quota_exceeded",
              "rate_limited",
              "internal_error",
              "unavailable",
            ]),
          },
          callbacks: {
            result: {
              "{$request.body#/callback_url}": {
                post: {
                  summary: "The result, signed (Standard Webhooks)",
                  description:
                    "Sent when the request had a callback_url and has ended. A 2xx ends delivery and 410 stops it; anything else (3xx included), no answer within 15 s or a refused connection is retried for over 24 hours (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, with jitter; a longer Retry-After is honoured) with the same webhook-id.",
                  parameters: signatureHeaders(true, CALLBACK_HEADERS),
                  requestBody: {
                    required: true,
                    content: { "application/json": { schema: ref("ResultEvent") } },
                  },
                  responses: {
                    "2XX": { description: "Delivered: no more attempts." },
                    "410": { description: "Gone: deepqueue stops delivering this event." },
                    default: { description: "Not delivered: retried later." },
                  },
                },
              },
            },
          },
        },
      },
      "/v1/requests/{id}": {
        get: {
          operationId: "getRequest",
          tags: ["requests"],
          summary: "Read a request's record",
          description: "Visible only to its own tenant: another tenant's id is 404, like an unknown one.",
          parameters: [idParameter("The request id from the 202 response.", "^req_")],
          responses: {
            "200": {
              description: "The record.",
              content: { "application/json": { schema: ref("RequestRecord") } },
            },
            ...errorResponses(READ_ERRORS),
          },
        },
      },
      "/v1/conversations/{id}": {
        get: {
          operationId: "getConversation",
          tags: ["conversations"],
          summary: "Read a conversation",
          description:
            "The messages of a conversation (own tenant only); `summary` stands for older turns that were compressed.",
          parameters: [idParameter("The conversation_id given when submitting.")],
          responses: {
            "200": {
              description: "The conversation.",
              content: { "application/json": { schema: ref("Conversation") } },
            },
            ...errorResponses(READ_ERRORS),
          },
        },
      },
      ...batchApiPaths(),
      ...OPENAI_PATHS,
      "/healthz": {
        get: {
          operationId: "getHealth",
          tags: ["operations"],
          summary: "Health",
          description: "200 when the function can reach the requests queue and the requests table.",
          security: [],
          responses: {
            "200": { description: "Healthy.", content: { "application/json": { schema: ref("HealthOk") } } },
            "503": {
              description: "`unavailable`: the queue or the table does not answer.",
              content: { "application/json": { schema: ref("HealthFailed") } },
            },
          },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "getOpenApi",
          tags: ["operations"],
          summary: "This document",
          security: [],
          responses: {
            "200": {
              description: "The OpenAPI 3.1 document.",
              content: { "application/json": { schema: { type: "object" } } },
            },
          },
        },
      },
    },
    components: {
      schemas: { ...output, ...input, ...OPENAI_SCHEMAS },
      securitySchemes: {
        apiKey: {
          type: "http",
          scheme: "bearer",
          description:
            "A tenant's API key (`dq_…`) from `deepqueue keys create`; deepqueue stores only its SHA-256 hash.",
        },
        jwt: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description:
            "When DEEPQUEUE_JWKS_URL is set: a JWT verified against that JWKS (and DEEPQUEUE_JWT_ISSUER / DEEPQUEUE_JWT_AUDIENCE when set); the `tenant` claim (DEEPQUEUE_JWT_TENANT_CLAIM) names the tenant.",
        },
        webhookSignature: {
          type: "apiKey",
          in: "header",
          name: "webhook-signature",
          description:
            "A Standard Webhooks signature of the body (with the webhook-id and webhook-timestamp headers), keyed by the tenant's `whsec_` secret. Required for tenants that require signed requests; GETs are never signed.",
        },
      },
    },
  };
}

let served: string | undefined;

/** The document as ingest serves it at `GET /openapi.json`: built once, on first use. */
export function openApiJson(): string {
  served ??= JSON.stringify(openApiDocument());
  return served;
}
