import middy from "@middy/core";
import type { ScheduledEvent } from "aws-lambda";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createLogger } from "../shared/logger.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { graceSeconds, loadReconcilerEnv } from "./config.ts";
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

/** Dependencies from the environment. */
export function reconcilerDepsFromEnv(
  source: Record<string, string | undefined> = process.env,
): ReconcilerDeps {
  const env = loadReconcilerEnv(source);
  return {
    sqs: createSqsClient({
      region: env.AWS_REGION,
      ...(env.AWS_ENDPOINT_URL_SQS ? { endpoint: env.AWS_ENDPOINT_URL_SQS } : {}),
    }),
    requests: new DynamoRequestStore(
      createDynamoClient({
        region: env.AWS_REGION,
        ...(env.AWS_ENDPOINT_URL_DYNAMODB ? { endpoint: env.AWS_ENDPOINT_URL_DYNAMODB } : {}),
      }),
      env.DEEPQUEUE_PREFIX,
    ),
    prefix: env.DEEPQUEUE_PREFIX,
    logger: createLogger({ name: "reconciler", level: env.LOG_LEVEL }),
    graceMs: graceSeconds(env) * 1000,
  };
}

export const handler = createReconcilerHandler(reconcilerDepsFromEnv());
