import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { createDynamoBaseClient, createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { type BaseEnv, baseEnvSchema, loadEnv } from "../functions/shared/env.ts";
import { secretBoxFromEnv } from "../functions/shared/secret-box.ts";
import { DynamoRequestStore } from "../functions/shared/stores/requests.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";

/** What most commands need: parsed env, AWS clients at the configured endpoints, the stores. */
export interface CliContext {
  env: BaseEnv;
  sqs: SQSClient;
  dynamo: DynamoDBClient;
  ddb: DynamoDBDocumentClient;
  tenants: DynamoTenantStore;
  requests: DynamoRequestStore;
  close(): void;
}

/** @example const ctx = cliContext(); try { … } finally { ctx.close(); } */
export function cliContext(source: Record<string, string | undefined> = process.env): CliContext {
  const env = loadEnv(baseEnvSchema, source);
  const sqs = createSqsClient({ env });
  const dynamo = createDynamoBaseClient({ env });
  const ddb = createDynamoClient({ env });
  return {
    env,
    sqs,
    dynamo,
    ddb,
    tenants: new DynamoTenantStore(ddb, env.DEEPQUEUE_PREFIX, { secrets: secretBoxFromEnv(env) }),
    requests: new DynamoRequestStore(ddb, env.DEEPQUEUE_PREFIX),
    close() {
      sqs.destroy();
      dynamo.destroy();
      ddb.destroy();
    },
  };
}

/**
 * Runs `command` with a fresh context, and closes the context's clients however it ends.
 *
 * @example await withCliContext((ctx) => ctx.tenants.revoke("acme"));
 */
export async function withCliContext<T>(command: (ctx: CliContext) => Promise<T>): Promise<T> {
  const ctx = cliContext();
  try {
    return await command(ctx);
  } finally {
    ctx.close();
  }
}

export { print } from "./output.ts";
