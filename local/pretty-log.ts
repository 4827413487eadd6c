import type { DestinationStream } from "pino";
import type { PrettyOptions } from "pino-pretty";

/**
 * How `deepqueue dev` prints logs on a terminal: one coloured line each,
 * `[12:04:05.123] INFO: ingest    request accepted {"request_id":"req_…",…}`.
 * Every other place — containers, pipes, files, `deepqueue serve` — keeps
 * pino's JSON lines, untouched.
 */
const PRETTY_LOG_OPTIONS: PrettyOptions = {
  colorize: true,
  singleLine: true,
  translateTime: "SYS:HH:MM:ss.l",
  // `service` is always deepqueue; `name` / `function` lead the message instead.
  ignore: "pid,hostname,service,name,function",
  messageFormat: (log, messageKey, _level, { colors }) =>
    `${colors.magenta(String(log.function ?? log.name ?? "").padEnd(10))}${String(log[messageKey] ?? "")}`,
  // Synchronous, so log lines and the banner (process.stdout) keep their order.
  sync: true,
};

/** Set by `dev` for its children, which write to the same terminal: pretty lines there too. */
export const PRETTY_LOGS_VARIABLE = "DEEPQUEUE_PRETTY_LOGS";

/**
 * A pretty destination when `out` is a terminal, else `undefined` (pino's JSON).
 * pino-pretty is loaded only then.
 *
 * @example useLogDestination(await terminalLogDestination());
 */
export async function terminalLogDestination(
  out: { isTTY?: boolean } = process.stdout,
  options: PrettyOptions = {},
): Promise<DestinationStream | undefined> {
  if (!out.isTTY && process.env[PRETTY_LOGS_VARIABLE] !== "1") return undefined;
  const { default: pretty } = await import("pino-pretty");
  return pretty({ ...PRETTY_LOG_OPTIONS, ...options });
}
