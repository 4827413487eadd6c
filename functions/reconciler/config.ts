import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";

/** Reconciler tunables, each with a default. */
export const RECONCILER_DEFAULTS = {
  /**
   * How long past its deadline a request may stay open before it counts as
   * lost. The batcher degrades or fails requests at their deadline itself; the
   * grace keeps the reconciler from racing a worker that is finishing one.
   */
  graceSeconds: 300,
  /** Dev mode's grace: lost requests show up failed within a minute. */
  devGraceSeconds: 30,
  /** `deepqueue reconcile` (without --once) and `dev` run it this often. */
  intervalSeconds: 60,
  /** Records handled per run at most, so one run stays short; the next run takes the rest. */
  maxPerRun: 1000,
} as const;

const reconcilerEnvSchema = baseEnvSchema.extend({
  /** Seconds past the deadline before an open request is ended failed; unset: RECONCILER_DEFAULTS.graceSeconds (dev: devGraceSeconds). */
  DEEPQUEUE_RECONCILE_GRACE_SECONDS: z.coerce.number().int().min(0).optional(),
  /** Seconds between runs of the reconcile loop. */
  DEEPQUEUE_RECONCILE_INTERVAL_SECONDS: z.coerce
    .number()
    .positive()
    .default(RECONCILER_DEFAULTS.intervalSeconds),
});
type ReconcilerEnv = z.infer<typeof reconcilerEnvSchema>;

/** @example const env = loadReconcilerEnv(); */
export function loadReconcilerEnv(source: Record<string, string | undefined> = process.env): ReconcilerEnv {
  return loadEnv(reconcilerEnvSchema, source);
}

/** The grace in force: the variable, else dev mode's, else the default. */
export function graceSeconds(env: ReconcilerEnv): number {
  return (
    env.DEEPQUEUE_RECONCILE_GRACE_SECONDS ??
    (env.DEEPQUEUE_DEV_MODE ? RECONCILER_DEFAULTS.devGraceSeconds : RECONCILER_DEFAULTS.graceSeconds)
  );
}
