import type { SubmitBody } from "../../events/index.ts";
import { HttpError, PromptTooLongError, RateLimitedError, ServiceOverloadedError } from "../shared/errors.ts";
import { tokenFloor } from "../shared/token-floor.ts";
import {
  type PromptInput,
  type TokenCount,
  TokenizerBusyError,
  type TokenizerPool,
} from "../shared/tokenizer-pool.ts";
import { ADMISSION_DEFAULTS } from "./config.ts";
import type { RateLimiter } from "./rate-limit.ts";

/**
 * What a submission must pass before anything is written, ordered cheapest
 * first so that a hostile tenant pays for its own refusals and nobody else
 * waits on them:
 *
 * 1. the ingest replica is not past its in-flight limit (else 503 + Retry-After);
 * 2. the tenant's rate limit and abuse budget (429 `rate_limited`), both in memory;
 * 3. the prompt's token floor against the window — a prompt that cannot fit
 *    even in the best case is refused without tokenizing it;
 * 4. the exact count, long prompts on a worker thread (503 when that queue is full).
 *
 * Refusals the tenant caused (400, 413, 422) are charged to its abuse budget,
 * weighted by the body size and by the CPU time its prompt took to count; once the budget is spent, the tenant's
 * submissions are refused at step 2 until it refills. Everything is per
 * replica and in memory (no store call per request), bounded by the limiters'
 * `maxTenants`.
 *
 * @example
 * const admission = new Admission({ maxModelLen: 4096, tokenizer, limiter, abuse });
 * admission.gate("acme");
 * const tokens = await admission.promptTokens(body);
 */
export interface AdmissionOptions {
  /** The model's context window (DEEPQUEUE_MAX_MODEL_LEN). */
  maxModelLen: number;
  tokenizer: Pick<TokenizerPool, "count">;
  /** Per-tenant request rate (DEEPQUEUE_RATE_LIMIT_PER_SECOND). */
  limiter: RateLimiter;
  /** Per-tenant budget of refusals (DEEPQUEUE_ABUSE_BUDGET). */
  abuse: RateLimiter;
  /** Submissions in progress on this replica above which new ones get 503. @default ADMISSION_DEFAULTS.maxInFlight */
  maxInFlight?: number;
  /** Body bytes that cost one more unit of abuse budget when refused. @default ADMISSION_DEFAULTS.abuseBytesPerUnit */
  abuseBytesPerUnit?: number;
  /** Milliseconds of tokenizing a refused prompt that cost one more unit. @default ADMISSION_DEFAULTS.abuseMsPerUnit */
  abuseMsPerUnit?: number;
  /** Told of each 429 from `gate` (metrics). */
  onRateLimited?: (kind: "rate" | "abuse") => void;
}

/** Statuses of refusals the caller caused, charged to its abuse budget. */
const CHARGED_STATUSES = new Set([400, 413, 422]);

export class Admission {
  readonly #options: Required<AdmissionOptions>;
  #inFlight = 0;

  constructor(options: AdmissionOptions) {
    this.#options = { ...ADMISSION_DEFAULTS, onRateLimited: () => {}, ...options };
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Counts a submission in; the returned function counts it out. Throws 503 past `maxInFlight`. */
  enter(): () => void {
    if (this.#inFlight >= this.#options.maxInFlight) {
      throw new ServiceOverloadedError("ingest is at capacity; nothing was accepted, retry shortly", 1);
    }
    this.#inFlight += 1;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#inFlight -= 1;
    };
  }

  /**
   * Whether `gate` would refuse the tenant now, without taking anything: for a
   * refusal before the body is read. The full path still runs `gate`.
   */
  peek(tenant: string): RateLimitedError | undefined {
    return this.#refusal(tenant, { take: false });
  }

  /** The tenant's rate limit and abuse budget: 429 `rate_limited` with Retry-After. */
  gate(tenant: string): void {
    const refusal = this.#refusal(tenant, { take: true });
    if (refusal) throw refusal;
  }

  /** The abuse budget first (it takes nothing), then the rate limit (a token taken unless peeking). */
  #refusal(tenant: string, { take }: { take: boolean }): RateLimitedError | undefined {
    const refused = this.#options.abuse.waitFor(tenant);
    if (refused > 0) {
      this.#options.onRateLimited("abuse");
      return new RateLimitedError(
        "too many refused requests from this tenant (invalid or oversized bodies); slow down",
        refused,
      );
    }
    const rate = take ? this.#options.limiter.take(tenant) : this.#options.limiter.waitFor(tenant);
    if (rate > 0) {
      this.#options.onRateLimited("rate");
      return new RateLimitedError("too many requests for this tenant; slow down", rate);
    }
    return undefined;
  }

  /**
   * The prompt's tokens as vLLM counts them; `prompt_too_long` when the
   * prompt plus `max_tokens` cannot fit the window. When the real count
   * refuses it, the CPU time the count took is charged to `tenant`'s budget.
   */
  async promptTokens(
    body: Pick<SubmitBody, "prompt" | "messages" | "max_tokens">,
    tenant?: string,
  ): Promise<number> {
    const limit = this.#options.maxModelLen;
    const floor = floorOf(body);
    if (floor + body.max_tokens > limit) throw new PromptTooLongError(floor, limit, { atLeast: true });
    let counted: TokenCount;
    try {
      counted = await this.#options.tokenizer.count(body as PromptInput);
    } catch (error) {
      if (error instanceof TokenizerBusyError) {
        throw new ServiceOverloadedError("too many long prompts are being counted; retry shortly", 1);
      }
      throw error;
    }
    if (counted.tokens + body.max_tokens > limit) {
      if (tenant) this.#options.abuse.charge(tenant, counted.ms / this.#options.abuseMsPerUnit);
      throw new PromptTooLongError(counted.tokens, limit);
    }
    return counted.tokens;
  }

  /** Charges a refusal to the tenant's abuse budget when the tenant caused it. */
  charge(tenant: string, error: unknown, bodyBytes: number): void {
    if (!(error instanceof HttpError) || !CHARGED_STATUSES.has(error.status)) return;
    this.#options.abuse.charge(tenant, 1 + Math.floor(bodyBytes / this.#options.abuseBytesPerUnit));
  }
}

function floorOf(body: Pick<SubmitBody, "prompt" | "messages">): number {
  if (!body.messages) return tokenFloor(body.prompt ?? "");
  // The chat template puts a special token or "\n\n" between contents: their floors add up.
  let n = 0;
  for (const m of body.messages) n += tokenFloor(m.content);
  return n;
}
