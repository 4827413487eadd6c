import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger } from "pino";

/**
 * Paths pino replaces with "[redacted]" on every line: API keys, webhook
 * secrets, bearer tokens and authorization headers never reach logs.
 */
export const REDACT_PATHS = [
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
      formatters: { level: (label) => ({ level: label }) },
      ...options,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    },
    destination as pino.DestinationStream,
  );
}
