import { HttpAnswer } from "./http.ts";
import { errorBody } from "./openai-schema.ts";
import type { FailureType, RuntimeConfig } from "./options.ts";

/** The failure a request gets: a type from `failureTypes`, or "down" (the model is gone). */
export type InjectedFailure = FailureType | "down";

/**
 * Which failure, if any, the next request for `model` gets: "down" while the
 * model is taken away, then the `failNext` countdown, then the dice at `failureRate`.
 */
export function drawFailure(
  runtime: Required<RuntimeConfig>,
  model: string,
  dice: () => number,
): InjectedFailure | undefined {
  if (runtime.down || runtime.unavailableModels.includes(model)) return "down";
  const pick = () => runtime.failureTypes[Math.floor(dice() * runtime.failureTypes.length)]!;
  if (runtime.failNext > 0) {
    runtime.failNext -= 1;
    return pick();
  }
  if (runtime.failureRate > 0 && dice() < runtime.failureRate) return pick();
  return undefined;
}

const ANSWERS = {
  down: [503, "ServiceUnavailableError", "The model is unavailable (simulated)."],
  rate_limit: [429, "RateLimitError", "Rate limit reached (simulated); retry after the Retry-After delay."],
  server_error: [500, "InternalServerError", "Internal server error (simulated)."],
  unavailable: [503, "ServiceUnavailableError", "The model server is overloaded or restarting (simulated)."],
} as const;

/** The HTTP answer of an answering failure (429, 500, 503); 429 and 503 carry Retry-After. */
export function failureAnswer(failure: keyof typeof ANSWERS, retryAfterSeconds: number): HttpAnswer {
  const [status, type, message] = ANSWERS[failure];
  const headers: Record<string, string> = status === 500 ? {} : { "retry-after": String(retryAfterSeconds) };
  return new HttpAnswer(status, errorBody(status, type, message), headers);
}
