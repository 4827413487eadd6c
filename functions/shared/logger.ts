import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger } from "pino";

/**
 * Paths pino replaces with "[redacted]" on every line (fast-redact, before the
 * deep scrub below, which catches the same keys at any depth).
 */
const REDACT_PATHS = [
  "api_key",
  "*.api_key",
  "apiKey",
  "*.apiKey",
  "webhook_secret",
  "*.webhook_secret",
  "webhookSecret",
  "*.webhookSecret",
  "secret",
  "*.secret",
  "secrets",
  "*.secrets",
  "token",
  "*.token",
  "password",
  "*.password",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  'headers["webhook-signature"]',
  '*.headers["webhook-signature"]',
  "INFERENCE_API_KEY",
  "*.INFERENCE_API_KEY",
  "DEEPQUEUE_DEV_API_KEY",
  "*.DEEPQUEUE_DEV_API_KEY",
];

let processDestination: pino.DestinationStream | undefined;

/**
 * Where loggers made without a destination write from now on; `undefined`
 * (the default) is pino's JSON lines on stdout. Only `deepqueue dev` on a
 * terminal sets it, to a pretty stream: every function in that process
 * creates its own logger, so this is the one place they all meet.
 *
 * @example useLogDestination(await terminalLogDestination());
 */
export function useLogDestination(destination: pino.DestinationStream | undefined): void {
  processDestination = destination;
}

/**
 * Keys whose values never reach a log line, at any depth, whatever object they
 * sit in (case-insensitive): credentials and secrets, and the tenant's content
 * (prompts, messages, answers, summaries), which is theirs, not ours to keep.
 */
const SECRET_KEYS: ReadonlySet<string> = new Set([
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "cookie",
  "set-cookie",
  "api_key",
  "apikey",
  "key_hash",
  "webhook_secret",
  "webhooksecret",
  "webhook_secrets",
  "webhook-signature",
  "secret",
  "secrets",
  "token",
  "password",
  "inference_api_key",
  "deepqueue_dev_api_key",
  "prompt",
  "messages",
  "content",
  "answer",
  "text",
  "summary",
  "context",
  "metadata",
]);

/** Headers a log line may show; every other header is dropped. */
const LOGGED_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "user-agent",
  "traceparent",
  "idempotency-key",
  "webhook-id",
  "webhook-timestamp",
  "x-request-id",
]);

const MAX_DEPTH = 6;

/** A copy of `value` with SECRET_KEYS censored at every depth (cycles and depth bounded). */
function scrub(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Error) return value; // pino's err serializer handles errors
  if (seen.has(value)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[truncated]";
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEYS.has(k.toLowerCase()) ? "[redacted]" : scrub(v, depth + 1, seen);
  }
  return out;
}

/**
 * Allow-list serializers: `headers` keep only LOGGED_HEADERS; `err` keeps its
 * type, message, code and stack (never its attached request/response); the
 * rest of every line is scrubbed of SECRET_KEYS at any depth.
 */
const LOG_SERIALIZERS: Record<string, (value: unknown) => unknown> = {
  headers: (headers) => {
    if (!headers || typeof headers !== "object") return headers;
    return Object.fromEntries(
      Object.entries(headers as Record<string, unknown>).filter(([k]) => LOGGED_HEADERS.has(k.toLowerCase())),
    );
  },
  err: (err) => {
    const serialized = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
    if (!serialized || typeof serialized !== "object") return serialized;
    const { type, message, stack, code, name, statusCode, status } = serialized;
    const cause = (err as { cause?: unknown })?.cause;
    return {
      type,
      message,
      stack,
      ...(code !== undefined ? { code } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(statusCode !== undefined ? { statusCode } : {}),
      ...(status !== undefined ? { status } : {}),
      ...(cause instanceof Error ? { cause: LOG_SERIALIZERS.err!(cause) } : {}),
    };
  },
};

/**
 * The pino logger every function uses; `name` is the function (ingest, cache…).
 *
 * @example
 * const log = createLogger({ name: "ingest", level: env.LOG_LEVEL });
 * log.info({ request_id, tenant, prompt_tokens }, "accepted");
 */
export function createLogger(
  options: LoggerOptions = {},
  destination: pino.DestinationStream | undefined = processDestination,
): Logger {
  return pino(
    {
      level: "info",
      base: { service: "deepqueue" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => scrub(object, 0, new WeakSet()) as Record<string, unknown>,
      },
      ...options,
      serializers: { ...options.serializers, ...LOG_SERIALIZERS },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    },
    destination as pino.DestinationStream,
  );
}
