import { z } from "zod";
import {
  type ChatMessage,
  describeIssues,
  LIMITS,
  type SubmitBodyInput,
  submitBodySchema,
} from "../../events/index.ts";
import { InvalidRequestError } from "../shared/errors.ts";
import { InvalidParamError } from "./errors.ts";

/**
 * OpenAI's request bodies for `POST /v1/chat/completions` and `POST /v1/completions`
 * (https://platform.openai.com/docs/api-reference/chat/create), mapped onto a submission of
 * `POST /v1/requests`. A parameter deepqueue cannot honour (n > 1, tools, logprobs, stop…) is
 * refused with a 400 naming it, never silently dropped; a few that change nothing a caller relies
 * on (top_p, seed, store, service_tier…) are accepted and ignored (docs/openai.md); an unknown one
 * is refused as OpenAI refuses it.
 */

/** What a route needs besides the submission: how to answer. */
export interface MappedBody {
  submit: SubmitBodyInput;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk carries the usage. */
  includeUsage: boolean;
}

/** A parameter accepted only at its neutral value (null, absent, or the given ones). */
function only(why: string, ...neutral: unknown[]) {
  return z
    .unknown()
    .refine((v) => v === undefined || v === null || neutral.some((n) => isSame(n, v)), { message: why })
    .optional();
}

function isSame(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Accepted and ignored (documented in docs/openai.md). */
const ignored = z.unknown().optional();

const shared = {
  model: z.string().min(1).max(LIMITS.modelNameLength),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(LIMITS.maxTemperature).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).strict().nullish(),
  user: z.string().max(256).nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
  n: only("only n=1 is supported: deepqueue answers one choice per request", 1),
  stop: only("stop sequences are not supported", [], ""),
  logit_bias: only("logit_bias is not supported", {}),
  frequency_penalty: only("frequency_penalty is not supported (only 0)", 0),
  presence_penalty: only("presence_penalty is not supported (only 0)", 0),
  top_p: ignored,
  seed: ignored,
  service_tier: ignored,
};

const textPart = z.object({ type: z.literal("text"), text: z.string() }).strict();

const messageSchema = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant"], {
      message:
        "role must be system, developer, user or assistant (tool and function messages are not supported)",
    }),
    content: z.union([z.string(), z.array(textPart, { message: "only text content parts are supported" })]),
    name: ignored,
    refusal: only("refusal is not supported", null),
    tool_calls: only("tool calls are not supported", []),
    function_call: only("function calls are not supported"),
    audio: only("audio is not supported"),
  })
  .strict();

const chatSchema = z
  .object({
    ...shared,
    messages: z.array(messageSchema).min(1).max(LIMITS.messages),
    max_completion_tokens: z.number().int().min(1).nullish(),
    tools: only("tools are not supported", []),
    tool_choice: only("tool_choice is not supported", "none"),
    parallel_tool_calls: ignored,
    functions: only("functions are not supported", []),
    function_call: only("function_call is not supported", "none"),
    logprobs: only("logprobs are not supported", false),
    top_logprobs: only("top_logprobs is not supported", 0),
    response_format: only("only response_format {type: text} is supported", { type: "text" }),
    modalities: only('only modalities ["text"] is supported', ["text"]),
    audio: only("audio output is not supported"),
    prediction: only("predicted outputs are not supported"),
    reasoning_effort: only("reasoning_effort is not supported"),
    web_search_options: only("web search is not supported"),
    store: ignored,
    prompt_cache_key: ignored,
    safety_identifier: ignored,
  })
  .strict();

const completionSchema = z
  .object({
    ...shared,
    prompt: z.union([
      z.string(),
      z
        .array(z.string())
        .length(1, "only one prompt per request is supported (send a batch for many: POST /v1/batches)"),
    ]),
    best_of: only("only best_of=1 is supported", 1),
    echo: only("echo is not supported", false),
    logprobs: only("logprobs are not supported", 0),
    suffix: only("suffix is not supported", ""),
  })
  .strict();

/** The first zod issue as an InvalidParamError: OpenAI's `param` is the field's dotted path. */
function firstIssue(error: z.ZodError): InvalidParamError {
  const issue = error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const path = [...issue.path.map(String), key].join(".");
    return new InvalidParamError(path, `Unrecognized request argument supplied: ${path}`);
  }
  const path = issue.path.map(String).join(".");
  return new InvalidParamError(path, describeIssues(new z.ZodError([issue])));
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new InvalidRequestError(
      "We could not parse the JSON body of your request (expected a JSON object).",
    );
  }
}

function parseWith<S extends z.ZodType>(schema: S, raw: string): z.output<S> {
  const json = parseJson(raw);
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new InvalidRequestError("the body must be a JSON object");
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw firstIssue(parsed.error);
  return parsed.data;
}

/** OpenAI's `user` is kept in the request's metadata (echoed in the record), unless metadata has its own. */
function metadataOf(body: { user?: string | null; metadata?: Record<string, unknown> | null }) {
  const metadata = { ...(body.user ? { user: body.user } : {}), ...(body.metadata ?? {}) };
  return Object.keys(metadata).length > 0 ? metadata : undefined;
}

/** Checks the submission as `POST /v1/requests` would, naming the OpenAI parameter at fault. */
function checked(submit: SubmitBodyInput, names: Record<string, string>): SubmitBodyInput {
  const parsed = submitBodySchema.safeParse(submit);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = String(issue.path[0] ?? "");
    const param = [names[field] ?? field, ...issue.path.slice(1).map(String)].join(".");
    const message = describeIssues(new z.ZodError([issue])).replace(/^[^:]*:/, `${param}:`);
    throw new InvalidParamError(param, message);
  }
  return submit;
}

function common(body: z.output<typeof chatSchema> | z.output<typeof completionSchema>, maxTokens?: number) {
  const metadata = metadataOf(body);
  return {
    model: body.model,
    ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
    ...(body.temperature != null ? { temperature: body.temperature } : {}),
    ...(metadata ? { metadata } : {}),
  };
}

function toMessage(message: z.output<typeof messageSchema>): ChatMessage {
  const content =
    typeof message.content === "string" ? message.content : message.content.map((p) => p.text).join("\n");
  // OpenAI's `developer` role is its newer name for `system`.
  return { role: message.role === "developer" ? "system" : message.role, content };
}

/**
 * `POST /v1/chat/completions`'s body as a submission. `max_completion_tokens` (OpenAI's current
 * name) and `max_tokens` are both read; without either the API's default applies.
 *
 * @example mapChatBody('{"model":"deepseek-chat","messages":[{"role":"user","content":"Hi"}]}', { deadlineSeconds: 120 })
 */
export function mapChatBody(raw: string, options: { deadlineSeconds: number }): MappedBody {
  const body = parseWith(chatSchema, raw);
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  const submit = checked(
    {
      ...common(body, maxTokens),
      messages: body.messages.map(toMessage),
      deadline_seconds: options.deadlineSeconds,
    },
    { max_tokens: body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens" },
  );
  return { submit, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true };
}

/**
 * `POST /v1/completions`'s body as a submission: one prompt (a string, or an array of one).
 *
 * @example mapCompletionBody('{"model":"deepseek-chat","prompt":"Say hi"}', { deadlineSeconds: 120, maxTokens: 16 })
 */
export function mapCompletionBody(
  raw: string,
  options: { deadlineSeconds: number; maxTokens: number },
): MappedBody {
  const body = parseWith(completionSchema, raw);
  const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0]!;
  const submit = checked(
    {
      ...common(body, body.max_tokens ?? options.maxTokens),
      prompt,
      deadline_seconds: options.deadlineSeconds,
    },
    {},
  );
  return { submit, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true };
}
