import middy from "@middy/core";
import type { ScheduledEvent } from "aws-lambda";
import { loadReconcilerEnv } from "./config.ts";
import { createReconcilerDeps } from "./deps.ts";
import { type ReconcileReport, type ReconcilerDeps, runReconcilerOnce } from "./reconciler.ts";

/**
 * The reconciler as a scheduled function (an EventBridge schedule on Lambda;
 * a CronJob running `deepqueue reconcile --once` on Kubernetes).
 *
 * @example const handler = createReconcilerHandler(deps); await handler(scheduledEvent, context);
 */
export function createReconcilerHandler(deps: ReconcilerDeps) {
  return middy(async (_event: ScheduledEvent): Promise<ReconcileReport> => runReconcilerOnce(deps));
}

/** The Lambda export: dependencies built once per process from the environment. */
export const handler = createReconcilerHandler(createReconcilerDeps(loadReconcilerEnv()));
