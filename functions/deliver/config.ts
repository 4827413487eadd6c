import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";

/**
 * The documented retry schedule (docs/api.md#webhook-callbacks), like Svix's: the delay before each retry after the
 * first attempt, in seconds (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h —
 * 8 attempts spread over ~27.6 hours, so at least 24 hours of attempts).
 */
export const RETRY_SCHEDULE_SECONDS = [5, 300, 1800, 7200, 18_000, 36_000, 36_000] as const;

/** Dev mode's schedule (seconds long): the same 8 attempts in about two minutes. */
const DEV_RETRY_SCHEDULE_SECONDS = [1, 2, 4, 8, 15, 30, 60] as const;

/** Delivery tunables, each with a default. */
export const DELIVER_DEFAULTS = {
  /** The retry schedule outside dev mode. */
  schedule: RETRY_SCHEDULE_SECONDS,
  /** A callback that has not answered in 15 s is retried. */
  callbackTimeoutSeconds: 15,
  /** ± this fraction of each scheduled delay is random, so retries of many events spread out. */
  jitter: 0.2,
  /** The longest `Retry-After` honoured; a receiver cannot push a retry past the schedule's longest step. */
  maxRetryAfterSeconds: 36_000,
} as const;

const SCHEDULE_FORMAT = "must be a comma-separated list of seconds ≥ 0, e.g. 5,300,1800";

/** The deliver function's environment: the common variables (docs/api.md#configuration) plus its own tunables. */
const deliverEnvSchema = baseEnvSchema.extend({
  /** Overrides the retry schedule: comma-separated seconds before each retry; unset: RETRY_SCHEDULE_SECONDS (dev: DEV_RETRY_SCHEDULE_SECONDS). */
  DEEPQUEUE_DELIVERY_RETRY_SCHEDULE: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const list = v.split(",").map((s) => Number(s.trim()));
      if (list.some((n) => !Number.isFinite(n) || n < 0)) {
        ctx.addIssue({ code: "custom", message: SCHEDULE_FORMAT });
        return z.NEVER;
      }
      return list;
    }),
  /** Seconds a callback may take before it counts as failed and is retried (DELIVER_DEFAULTS.callbackTimeoutSeconds). */
  DEEPQUEUE_CALLBACK_TIMEOUT_SECONDS: z.coerce
    .number()
    .positive()
    .max(60)
    .default(DELIVER_DEFAULTS.callbackTimeoutSeconds),
});
type DeliverEnv = z.infer<typeof deliverEnvSchema>;

/** @example const env = loadDeliverEnv(); */
export function loadDeliverEnv(source: Record<string, string | undefined> = process.env): DeliverEnv {
  return loadEnv(deliverEnvSchema, source);
}

/** The schedule in force: the override, else dev mode's, else the documented one. */
export function retrySchedule(
  env: Pick<DeliverEnv, "DEEPQUEUE_DELIVERY_RETRY_SCHEDULE" | "DEEPQUEUE_DEV_MODE">,
) {
  return (
    env.DEEPQUEUE_DELIVERY_RETRY_SCHEDULE ??
    (env.DEEPQUEUE_DEV_MODE ? [...DEV_RETRY_SCHEDULE_SECONDS] : [...RETRY_SCHEDULE_SECONDS])
  );
}
