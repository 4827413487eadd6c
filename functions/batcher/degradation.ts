import type { ErrorDetail, ResultSource } from "../../events/index.ts";
import { FAILURE_CODES } from "../shared/errors.ts";
import { InferenceError, publicFailureMessage } from "../shared/inference-errors.ts";
import type { Logger } from "../shared/logger.ts";
import { counter } from "../shared/metrics.ts";
import { lastAnswerKey, type ResponseCache } from "../shared/stores/cache.ts";
import type { DegradationSettings } from "../shared/stores/tenants.ts";
import { type Answer, type Item, pickAnswer, promptOf } from "./item.ts";
import type { ModelCalls } from "./model-calls.ts";

const degradations = counter(
  "deepqueue_degradations_total",
  "Requests answered (or failed) by a degradation level",
  ["level"],
);

/** A tenant with no settings (or no record) allows every level. */
const EVERY_LEVEL: DegradationSettings = { cache: true, fallback: true, static: true };

/** How the ladder ends a request: an answer and who gave it, or the failure. */
export type LadderOutcome = { source: ResultSource; answer: Answer } | { error: ErrorDetail };

export interface DegradationLadderOptions {
  cache: Pick<ResponseCache, "getLast">;
  models: Pick<ModelCalls, "fallback">;
  /** Level 2's model; without one (or when it is the request's own) the level is skipped. */
  fallbackModel: string | undefined;
  /** Level 3's answer. */
  staticReply: string;
  logger: Logger;
}

/**
 * The degradation ladder (docs/api.md#the-flow), each level switchable per tenant: the last answer
 * to the same prompt (any age) → the fallback model → the static reply → failed.
 *
 * @example const outcome = await ladder.answer(item, "unavailable", error);
 */
export class DegradationLadder {
  constructor(private readonly options: DegradationLadderOptions) {}

  async answer(
    item: Pick<Item, "request" | "tenant" | "span">,
    reason: "deadline" | "unavailable",
    cause?: unknown,
  ): Promise<LadderOutcome> {
    const { request, tenant } = item;
    const levels = tenant?.degradation ?? EVERY_LEVEL;
    const log = this.options.logger.child({ request_id: request.id, tenant: request.tenant, reason });
    const last = levels.cache ? await this.#lastAnswer(item) : undefined;
    if (last) {
      degradations.inc({ level: "cache" });
      log.warn("degraded to the last cached answer");
      return { source: "cache", answer: last };
    }
    const fallback = levels.fallback ? await this.#fallback(item, log) : undefined;
    if (fallback) return { source: "fallback", answer: fallback };
    if (levels.static) {
      degradations.inc({ level: "static" });
      log.warn("degraded to the static reply");
      const usage = { prompt_tokens: 0, completion_tokens: 0 };
      return { source: "static", answer: { text: this.options.staticReply, finish_reason: "stop", usage } };
    }
    degradations.inc({ level: "failed" });
    // The tenant sees a fixed message; the model server's text and address stay in the logs.
    log.warn({ err: cause }, "no answer and no degradation left");
    const deadlinePassed = reason === "deadline" || Date.now() >= Date.parse(request.deadline_at);
    const code = deadlinePassed ? FAILURE_CODES.deadlineExceeded : FAILURE_CODES.modelUnavailable;
    return { error: { code, message: publicFailureMessage(cause, code) } };
  }

  async #lastAnswer({ request }: Pick<Item, "request">): Promise<Answer | undefined> {
    const key = lastAnswerKey({ tenant: request.tenant, model: request.model, ...promptOf(request) });
    const last = await this.options.cache.getLast(key);
    return last ? pickAnswer(last) : undefined;
  }

  async #fallback(item: Pick<Item, "request" | "span">, log: Logger): Promise<Answer | undefined> {
    const model = this.options.fallbackModel;
    if (!model || model === item.request.model) return undefined;
    try {
      const answer = await this.options.models.fallback(item, model);
      degradations.inc({ level: "fallback" });
      log.warn({ model }, "degraded to the fallback model");
      return answer;
    } catch (error) {
      log.warn({ err: error }, "the fallback model failed too");
      return undefined;
    }
  }
}

/**
 * When a transient model error comes back through the queue: base × 2^(attempt−1) seconds,
 * capped, and never sooner than the server's Retry-After.
 *
 * @example new RetrySchedule({ retryBaseSeconds: 2, retryMaxSeconds: 60, degradeMarginSeconds: 10 }).delaySeconds(3, error) // 8
 */
export class RetrySchedule {
  constructor(
    private readonly options: {
      retryBaseSeconds: number;
      retryMaxSeconds: number;
      degradeMarginSeconds: number;
    },
  ) {}

  /** Seconds until attempt `attempt` + 1. */
  delaySeconds(attempt: number, error: unknown): number {
    const { retryBaseSeconds, retryMaxSeconds } = this.options;
    const delay = Math.min(retryMaxSeconds, retryBaseSeconds * 2 ** (attempt - 1));
    if (error instanceof InferenceError && error.retryAfterMs !== undefined) {
      return Math.max(delay, Math.ceil(error.retryAfterMs / 1000));
    }
    return delay;
  }

  /** Whether a retry in `delaySeconds` would land within the degrade margin of the deadline: degrade now. */
  tooLate(deadlineAt: string, delaySeconds: number, now = Date.now()): boolean {
    return now + delaySeconds * 1000 >= Date.parse(deadlineAt) - this.options.degradeMarginSeconds * 1000;
  }
}
