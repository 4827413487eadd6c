import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { batchSweepFromEnv } from "../batches/sweep.ts";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createLogger, type Logger } from "../shared/logger.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { graceSeconds, loadReconcilerEnv } from "./config.ts";
import type { ReconcilerOptions } from "./reconciler.ts";

/**
 * The reconciler's dependencies from its environment; `overrides` shares clients.
 *
 * @example const deps = reconcilerDepsFromEnv(process.env, { sqs, ddb });
 */
export function reconcilerDepsFromEnv(
  source: Record<string, string | undefined> = process.env,
  overrides: { sqs?: SQSClient; ddb?: DynamoDBDocumentClient; logger?: Logger } = {},
): ReconcilerOptions {
  const env = loadReconcilerEnv(source);
  const ddb = overrides.ddb ?? createDynamoClient({ env });
  const sqs = overrides.sqs ?? createSqsClient({ env });
  return {
    sqs,
    sweepBatches: batchSweepFromEnv(env, { sqs, ddb }),
    requests: new DynamoRequestStore(ddb, env.DEEPQUEUE_PREFIX),
    prefix: env.DEEPQUEUE_PREFIX,
    logger: overrides.logger ?? createLogger({ name: "reconciler", level: env.LOG_LEVEL }),
    graceMs: graceSeconds(env) * 1000,
  };
}
