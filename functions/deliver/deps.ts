import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createLogger, type Logger } from "../shared/logger.ts";
import { secretBoxFromEnv } from "../shared/secret-box.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { loadDeliverEnv, retrySchedule } from "./config.ts";
import type { DeliverOptions } from "./deliver.ts";

/**
 * Every dependency of deliver, built from its environment (docs/api.md#configuration plus
 * functions/deliver/config.ts). `overrides` shares clients (one `dev` process
 * runs every function).
 *
 * @example const deps = deliverDepsFromEnv(process.env, { sqs, ddb });
 */
export function deliverDepsFromEnv(
  source: Record<string, string | undefined> = process.env,
  overrides: { sqs?: SQSClient; ddb?: DynamoDBDocumentClient; logger?: Logger } = {},
) {
  const env = loadDeliverEnv(source);
  const ddb = overrides.ddb ?? createDynamoClient({ env });
  return {
    sqs: overrides.sqs ?? createSqsClient({ env }),
    requests: new DynamoRequestStore(ddb, env.DEEPQUEUE_PREFIX),
    tenants: new DynamoTenantStore(ddb, env.DEEPQUEUE_PREFIX, { secrets: secretBoxFromEnv(env) }),
    prefix: env.DEEPQUEUE_PREFIX,
    devMode: env.DEEPQUEUE_DEV_MODE,
    schedule: retrySchedule(env),
    callbackTimeoutMs: env.DEEPQUEUE_CALLBACK_TIMEOUT_SECONDS * 1000,
    logger: overrides.logger ?? createLogger({ name: "deliver", level: env.LOG_LEVEL }),
  } satisfies DeliverOptions;
}
