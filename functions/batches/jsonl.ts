import { z } from "zod";
import {
  type BatchEndpoint,
  type BatchError,
  batchInputLineSchema,
  type ChatMessage,
  describeIssues,
  LIMITS,
} from "../../events/index.ts";

/** Bounds of a batch input file (docs/openai.md#limits); OpenAI's own are 50,000 lines and 200 MB. */
export const JSONL_LIMITS = {
  maxLines: 50_000,
  /** Problems reported in a failed batch's `errors` (the first ones, by line). */
  maxErrors: 100,
} as const;

/** OpenAI's default temperature (the OpenAI-compatible routes follow OpenAI, not POST /v1/requests). */
export const OPENAI_DEFAULT_TEMPERATURE = 1;

/** A valid line, as the pipeline will run it. `line` counts from 0 (errors say 1-based lines, as OpenAI). */
export interface BatchLine {
  line: number;
  custom_id: string;
  model?: string;
  prompt?: string;
  messages?: ChatMessage[];
  max_tokens: number;
  temperature: number;
}

export interface ValidatedFile {
  lines: BatchLine[];
  /** Empty when the file is valid. */
  errors: BatchError[];
}

const textPart = z.object({ type: z.literal("text"), text: z.string() }).strict();

/** Chat message content: a string or text parts (joined); `developer` is OpenAI's newer name for `system`. */
const chatMessage = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant"]),
    content: z.union([z.string(), z.array(textPart).min(1)]),
    name: z.string().optional(),
  })
  .strict()
  .transform(
    (m): ChatMessage => ({
      role: m.role === "developer" ? "system" : m.role,
      content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join(""),
    }),
  );

/** Parameters every endpoint takes; `n` and `stream` only at the values a batch can serve. */
const common = {
  model: z.string().min(1).max(LIMITS.modelNameLength).optional(),
  max_tokens: z.number().int().min(1).optional(),
  temperature: z.number().min(0).max(LIMITS.maxTemperature).optional(),
  n: z.literal(1).optional(),
  stream: z.literal(false).optional(),
  user: z.string().optional(),
};

const chatBody = z
  .object({
    ...common,
    messages: z.array(chatMessage).min(1).max(LIMITS.messages),
    max_completion_tokens: z.number().int().min(1).optional(),
  })
  .strict();

const completionBody = z
  .object({
    ...common,
    prompt: z.union([z.string().min(1), z.tuple([z.string().min(1)])]),
  })
  .strict();

function problem(line: number, code: string, message: string, param: string | null = null): BatchError {
  return { code, message, param, line: line + 1 };
}

/** One line checked against the batch's endpoint: the line to run, or what is wrong with it. */
function checkLine(raw: string, n: number, endpoint: BatchEndpoint): BatchLine | BatchError {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return problem(n, "invalid_json_line", "this line is not valid JSON");
  }
  const envelope = batchInputLineSchema.safeParse(json);
  if (!envelope.success) return problem(n, "invalid_request", describeIssues(envelope.error));
  const { custom_id, url, body } = envelope.data;
  if (url !== endpoint) {
    return problem(
      n,
      "mismatched_url",
      `the line's url ${url} is not the batch's endpoint ${endpoint}`,
      "url",
    );
  }
  if (endpoint === "/v1/chat/completions") {
    const chat = chatBody.safeParse(body);
    if (!chat.success) return problem(n, "invalid_request", `body.${describeIssues(chat.error)}`, "body");
    const { model, messages, temperature } = chat.data;
    const maxTokens = chat.data.max_completion_tokens ?? chat.data.max_tokens;
    return shape(n, custom_id, { model, messages, max_tokens: maxTokens, temperature });
  }
  const completion = completionBody.safeParse(body);
  if (!completion.success) {
    return problem(n, "invalid_request", `body.${describeIssues(completion.error)}`, "body");
  }
  const { model, prompt, max_tokens, temperature } = completion.data;
  return shape(n, custom_id, {
    model,
    prompt: typeof prompt === "string" ? prompt : prompt[0],
    max_tokens,
    temperature,
  });
}

function shape(
  line: number,
  custom_id: string,
  body: Omit<BatchLine, "line" | "custom_id" | "max_tokens" | "temperature"> & {
    max_tokens: number | undefined;
    temperature: number | undefined;
  },
): BatchLine {
  return {
    line,
    custom_id,
    ...(body.model ? { model: body.model } : {}),
    ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
    ...(body.messages ? { messages: body.messages } : {}),
    max_tokens: body.max_tokens ?? LIMITS.defaultMaxTokens,
    temperature: body.temperature ?? OPENAI_DEFAULT_TEMPERATURE,
  };
}

/**
 * Checks a batch input file (JSONL: one `{"custom_id", "method": "POST", "url", "body"}` per
 * line) for a batch on `endpoint`: every line valid JSON of that shape, its `url` the batch's
 * endpoint, its body one the endpoint takes, `custom_id`s unique. Blank lines are skipped (a
 * trailing newline is usual). A file with any problem fails the batch, with the first
 * `maxErrors` problems and their 1-based line numbers.
 *
 * @example validateBatchFile(text, "/v1/chat/completions") // { lines: [...], errors: [] }
 */
export function validateBatchFile(
  text: string,
  endpoint: BatchEndpoint,
  limits: { maxLines?: number; maxErrors?: number } = {},
): ValidatedFile {
  const maxLines = limits.maxLines ?? JSONL_LIMITS.maxLines;
  const maxErrors = limits.maxErrors ?? JSONL_LIMITS.maxErrors;
  const rows = text.split("\n");
  const lines: BatchLine[] = [];
  const errors: BatchError[] = [];
  const seen = new Set<string>();
  for (let n = 0; n < rows.length && errors.length < maxErrors; n++) {
    const raw = rows[n]!.trim();
    if (raw === "") continue;
    if (lines.length + errors.length >= maxLines) {
      errors.push(problem(n, "too_many_requests", `a batch holds at most ${maxLines} lines`));
      break;
    }
    const checked = checkLine(raw, n, endpoint);
    if ("code" in checked) errors.push(checked);
    else if (seen.has(checked.custom_id)) {
      errors.push(
        problem(n, "duplicate_custom_id", `custom_id ${checked.custom_id} is used twice`, "custom_id"),
      );
    } else {
      seen.add(checked.custom_id);
      lines.push(checked);
    }
  }
  if (lines.length === 0 && errors.length === 0) {
    errors.push({ code: "empty_file", message: "the input file has no lines", param: null, line: null });
  }
  return { lines, errors };
}
