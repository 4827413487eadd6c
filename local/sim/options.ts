import { z } from "zod";
import { DeepqueueError } from "../../functions/shared/errors.ts";
import { withoutUndefined } from "../../functions/shared/options.ts";

/**
 * Every knob of the model-server simulator, with defaults that resemble one
 * A100-80GB running vLLM with a 7B model in FP16 (docs/simulator.md explains
 * each number). Names mirror vLLM's and llm-d-inference-sim's flags.
 */
/** A simulator option (or runtime config) that does not validate; the message names it. */
export class SimOptionsError extends DeepqueueError {
  constructor(what: "simulator option" | "simulator config", error: z.ZodError) {
    const issue = error.issues[0];
    const name = issue?.code === "unrecognized_keys" ? issue.keys.join(", ") : String(issue?.path[0] ?? "");
    super(`${what} ${name}: ${issue?.message ?? "invalid"}`, { cause: error });
    this.name = "SimOptionsError";
  }
}

export const FAILURE_TYPES = ["rate_limit", "server_error", "unavailable", "timeout", "dropped"] as const;
export type FailureType = (typeof FAILURE_TYPES)[number];

export const SIM_DEFAULTS = {
  /** Listen port; 0 picks a free one. */
  port: 8000,
  host: "127.0.0.1",
  /** Model names served (`/v1/models`); a request for another model gets vLLM's 404. */
  servedModelNames: ["deepseek-chat", "deepseek-chat-small"] as string[],
  /** Context window: prompt + max_tokens must fit (vLLM `--max-model-len`). */
  maxModelLen: 4096,
  /** Sequences decoded at once (vLLM `--max-num-seqs`); the rest wait. */
  maxNumSeqs: 64,
  /** Sequences allowed to wait; beyond it requests get 429 (llm-d-inference-sim default). */
  maxWaitingQueueLength: 1000,
  /** KV-cache capacity in tokens: ~55 GB free after 14 GB of weights, at 512 KiB per token for a 7B model. */
  kvCacheTokens: 100_000,
  /** Fixed prefill cost per sequence (kernel launches, scheduling). */
  prefillOverheadMs: 20,
  /** Prefill cost per prompt token (~10k prompt tokens/s). */
  prefillTimePerTokenMs: 0.1,
  /** Time between output tokens of one sequence running alone (~67 tokens/s). */
  interTokenLatencyMs: 15,
  /** Latency multiplier at max-num-seqs running, linear from 1 at one sequence (llm-d-inference-sim). */
  timeFactorUnderLoad: 2.5,
  /** Multiplies every latency above: 0.01 makes tests 100x faster, 0 makes them instant. */
  timeScale: 1,
  /** Probability (0..1) that an inference request fails with one of `failureTypes`. */
  failureRate: 0,
  failureTypes: [...FAILURE_TYPES] as FailureType[],
  /** How long a `timeout` failure holds the request before answering (not scaled). */
  slowResponseMs: 30_000,
  /** `Retry-After` seconds sent with 429 and 503 answers. */
  retryAfterSeconds: 1,
  /** Largest request body accepted. */
  maxBodyBytes: 4 * 1024 * 1024,
  /** Seeds the failure dice (text is seeded per request). */
  seed: 0,
  /** When set, inference requests need `Authorization: Bearer <apiKey>` (vLLM `--api-key`); else 401. */
  apiKey: undefined as string | undefined,
};

export type SimOptions = z.infer<typeof simOptionsSchema>;

const ms = z.number().finite().min(0);

/** Strict: an unknown option (a typo) fails loudly with its name. */
const simOptionsSchema = z
  .object({
    port: z.number().int().min(0).max(65535),
    host: z.string().min(1),
    servedModelNames: z.array(z.string().min(1)).min(1),
    maxModelLen: z.number().int().min(16),
    maxNumSeqs: z.number().int().min(1),
    maxWaitingQueueLength: z.number().int().min(0),
    kvCacheTokens: z.number().int().min(16),
    prefillOverheadMs: ms,
    prefillTimePerTokenMs: ms,
    interTokenLatencyMs: ms,
    timeFactorUnderLoad: z.number().min(1),
    timeScale: z.number().min(0),
    failureRate: z.number().min(0).max(1),
    failureTypes: z.array(z.enum(FAILURE_TYPES)).min(1),
    slowResponseMs: ms,
    retryAfterSeconds: z.number().int().min(0),
    maxBodyBytes: z.number().int().min(1024),
    seed: z.number().int(),
    apiKey: z.string().min(1).optional(),
  })
  .strict();

/** Options that may change while the simulator runs (`POST /sim/config`, `setConfig`). */
export const runtimeConfigSchema = z
  .object({
    failureRate: z.number().min(0).max(1),
    failureTypes: z.array(z.enum(FAILURE_TYPES)).min(1),
    /** Every inference request fails with 503 and /health answers 503: the model is gone. */
    down: z.boolean(),
    /** These models answer 503 while the others keep serving (take the main model away, keep the fallback). */
    unavailableModels: z.array(z.string()),
    /** The next N inference requests fail (types drawn from `failureTypes`), then normal service resumes. */
    failNext: z.number().int().min(0),
    slowResponseMs: ms,
    retryAfterSeconds: z.number().int().min(0),
    timeScale: z.number().min(0),
    prefillOverheadMs: ms,
    prefillTimePerTokenMs: ms,
    interTokenLatencyMs: ms,
    timeFactorUnderLoad: z.number().min(1),
  })
  .partial()
  .strict();

export type RuntimeConfig = z.infer<typeof runtimeConfigSchema>;

/**
 * Merges `options` over the defaults and validates them; throws naming the bad option.
 *
 * @example
 * resolveSimOptions({ port: 0, timeScale: 0.01 });
 */
export function resolveSimOptions(options: Partial<SimOptions> = {}): SimOptions {
  const merged = { ...SIM_DEFAULTS, ...withoutUndefined(options) };
  const parsed = simOptionsSchema.safeParse(merged);
  if (!parsed.success) throw new SimOptionsError("simulator option", parsed.error);
  return parsed.data;
}
