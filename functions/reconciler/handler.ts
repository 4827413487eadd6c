import type { ScheduledEvent } from "aws-lambda";
import { reconcilerDepsFromEnv } from "./deps.ts";
import { type ReconcileReport, type ReconcilerOptions, runReconcilerOnce } from "./reconciler.ts";

/**
 * The reconciler as a scheduled function (an EventBridge schedule on Lambda;
 * a CronJob running `deepqueue reconcile --once` on Kubernetes).
 *
 * @example const handler = createReconcilerHandler(deps); await handler(scheduledEvent);
 */
export function createReconcilerHandler(deps: ReconcilerOptions) {
  return async (_event: ScheduledEvent): Promise<ReconcileReport> => runReconcilerOnce(deps);
}

let lambdaHandler: ReturnType<typeof createReconcilerHandler> | undefined;

/** The Lambda entry point: dependencies built once per container, on the first event (importing parses no environment). */
export const handler = (event: ScheduledEvent) => {
  lambdaHandler ??= createReconcilerHandler(reconcilerDepsFromEnv());
  return lambdaHandler(event);
};
