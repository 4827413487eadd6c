/**
 * The OpenAI-compatible chat and completion routes in the OpenAPI document (events/openapi.ts):
 * their paths and the shapes they answer with, as OpenAI documents them
 * (https://platform.openai.com/docs/api-reference/chat). The prose is docs/openai.md.
 */

type Json = Record<string, unknown>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

const usage: Json = {
  type: "object",
  required: ["prompt_tokens", "completion_tokens", "total_tokens"],
  properties: {
    prompt_tokens: { type: "integer", minimum: 0 },
    completion_tokens: { type: "integer", minimum: 0 },
    total_tokens: { type: "integer", minimum: 0 },
  },
};

const head = {
  id: { type: "string", description: "The request id: `GET /v1/requests/{id}` reads the same request." },
  created: { type: "integer", description: "Unix seconds." },
  model: { type: "string" },
};

const common: Record<string, Json> = {
  model: { type: "string", description: "A model from `GET /v1/models`." },
  max_tokens: { type: ["integer", "null"], minimum: 1, maximum: 8192 },
  temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
  stream: { type: ["boolean", "null"], description: "Server-sent events, ending with `data: [DONE]`." },
  stream_options: {
    type: ["object", "null"],
    properties: { include_usage: { type: ["boolean", "null"] } },
    additionalProperties: false,
  },
  user: { type: ["string", "null"], description: "Kept in the request's metadata as `user`." },
  metadata: { type: ["object", "null"], description: "Echoed in the request record." },
  n: { const: 1, description: "Only 1." },
  top_p: { description: "Accepted and ignored." },
  seed: { description: "Accepted and ignored." },
};

/** A `chat.completion` or `text_completion` object, its one choice holding `choice`. */
function completionSchema(object: string, choice: Record<string, Json>): Json {
  return {
    type: "object",
    required: ["id", "object", "created", "model", "choices", "usage"],
    properties: {
      ...head,
      object: { const: object },
      choices: {
        type: "array",
        items: {
          type: "object",
          properties: { index: { type: "integer" }, ...choice, finish_reason: { type: "string" } },
        },
      },
      usage,
    },
  };
}

/** Component schemas of the OpenAI-compatible routes. */
export const OPENAI_SCHEMAS: Record<string, Json> = {
  OpenAiError: {
    type: "object",
    required: ["error"],
    properties: {
      error: {
        type: "object",
        required: ["message", "type", "param", "code"],
        properties: {
          message: { type: "string" },
          type: { type: "string", description: "OpenAI's error type, e.g. `invalid_request_error`." },
          param: { type: ["string", "null"], description: "The parameter at fault, when one is." },
          code: { type: ["string", "null"], description: "Our error code, or the request's failure code." },
        },
      },
    },
  },
  ChatCompletionRequest: {
    type: "object",
    required: ["model", "messages"],
    additionalProperties: false,
    description:
      "OpenAI's chat body. Unsupported parameters (n > 1, tools, logprobs, stop, response_format other than text…) are refused with a 400 naming them (docs/openai.md).",
    properties: {
      ...common,
      messages: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          required: ["role", "content"],
          properties: {
            role: { enum: ["system", "developer", "user", "assistant"] },
            content: {
              oneOf: [
                { type: "string" },
                {
                  type: "array",
                  items: {
                    type: "object",
                    properties: { type: { const: "text" }, text: { type: "string" } },
                  },
                },
              ],
            },
          },
        },
      },
      max_completion_tokens: { type: ["integer", "null"], minimum: 1, maximum: 8192 },
    },
  },
  CompletionRequest: {
    type: "object",
    required: ["model", "prompt"],
    additionalProperties: false,
    description: "OpenAI's legacy completions body; one prompt per request.",
    properties: {
      ...common,
      prompt: { oneOf: [{ type: "string" }, { type: "array", items: { type: "string" }, maxItems: 1 }] },
    },
  },
  ChatCompletion: completionSchema("chat.completion", {
    message: { type: "object", properties: { role: { const: "assistant" }, content: { type: "string" } } },
  }),
  TextCompletion: completionSchema("text_completion", { text: { type: "string" } }),
  Model: {
    type: "object",
    required: ["id", "object", "created", "owned_by"],
    properties: {
      id: { type: "string" },
      object: { const: "model" },
      created: { type: "integer" },
      owned_by: { type: "string" },
    },
  },
  ModelList: {
    type: "object",
    required: ["object", "data"],
    properties: { object: { const: "list" }, data: { type: "array", items: ref("Model") } },
  },
};

const openAiErrorContent = { "application/json": { schema: ref("OpenAiError") } };

function errors(statuses: Record<string, string>): Record<string, Json> {
  return Object.fromEntries(
    Object.entries(statuses).map(([status, description]) => [
      status,
      { description, content: openAiErrorContent },
    ]),
  );
}

const COMPLETION_ERRORS = errors({
  "400":
    "A parameter refused or invalid (`param` names it), the prompt too long (`prompt_too_long`), or the request failed on a bad input (`context_length_exceeded`, `invalid_request`).",
  "401": "Missing or invalid credentials.",
  "404": "`model_not_found`: a model not in `GET /v1/models`.",
  "429": "A quota or the rate limit (Retry-After).",
  "500": "The request failed (`internal_error`).",
  "503": "ingest cannot reach its queue or table, or the request failed with `model_unavailable`.",
  "504":
    "No answer in time (`deadline_exceeded`), or none yet within this HTTP request's time: poll `GET /v1/requests/{id}` (Location).",
});

function completionOperation(kind: "chat" | "text"): Json {
  const chat = kind === "chat";
  return {
    operationId: chat ? "createChatCompletion" : "createCompletion",
    tags: ["openai"],
    summary: chat
      ? "Create a chat completion (OpenAI-compatible)"
      : "Create a text completion (OpenAI-compatible)",
    description:
      "Admitted like `POST /v1/requests` (auth, quotas, rate limit, token count), queued, and answered once done; with `stream: true`, as server-sent events while the model writes.",
    requestBody: {
      required: true,
      content: { "application/json": { schema: ref(chat ? "ChatCompletionRequest" : "CompletionRequest") } },
    },
    responses: {
      "200": {
        description: chat
          ? "The completion; with `stream: true`, `chat.completion.chunk` events ending with `data: [DONE]`."
          : "The completion; with `stream: true`, `text_completion` chunk events ending with `data: [DONE]`.",
        headers: { "x-request-id": { description: "The request id.", schema: { type: "string" } } },
        content: {
          "application/json": { schema: ref(chat ? "ChatCompletion" : "TextCompletion") },
          "text/event-stream": { schema: { type: "string" } },
        },
      },
      ...COMPLETION_ERRORS,
    },
  };
}

/** The paths of the OpenAI-compatible chat and completion routes. */
export const OPENAI_PATHS: Record<string, Json> = {
  "/v1/chat/completions": { post: completionOperation("chat") },
  "/v1/completions": { post: completionOperation("text") },
  "/v1/models": {
    get: {
      operationId: "listModels",
      tags: ["openai"],
      summary: "List the models (OpenAI-compatible)",
      description: "The configured model and, when one is configured, the fallback model.",
      responses: {
        "200": { description: "The models.", content: { "application/json": { schema: ref("ModelList") } } },
        ...errors({ "401": "Missing or invalid credentials." }),
      },
    },
  },
  "/v1/models/{model}": {
    get: {
      operationId: "retrieveModel",
      tags: ["openai"],
      summary: "Retrieve a model (OpenAI-compatible)",
      parameters: [{ name: "model", in: "path", required: true, schema: { type: "string" } }],
      responses: {
        "200": {
          description: "The model.",
          content: { "application/json": { schema: ref("Model") } },
        },
        ...errors({
          "401": "Missing or invalid credentials.",
          "404": "`model_not_found`: not one of `GET /v1/models`.",
        }),
      },
    },
  },
};

/** The tag of these routes. */
export const OPENAI_TAG = {
  name: "openai",
  description: "OpenAI-compatible chat and text completions through the queue (docs/openai.md).",
};
