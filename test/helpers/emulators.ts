import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { type BootstrapReport, bootstrap } from "../../functions/shared/bootstrap.ts";
import {
  createDynamoBaseClient,
  createDynamoClient,
  createSqsClient,
} from "../../functions/shared/clients.ts";
import { createS3Client } from "../../functions/shared/s3-client.ts";
import { type Emulators, startEmulators } from "../../local/emulators.ts";

export interface TestStack {
  emulators: Emulators;
  sqs: SQSClient;
  dynamo: DynamoDBClient;
  ddb: DynamoDBDocumentClient;
  /** S3 on the SQS emulator's port (the files bucket). */
  s3: S3Client;
  prefix: string;
  report: BootstrapReport;
  /** Environment for code under test: endpoints, prefix, dev mode. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

let counter = 0;

/**
 * Real fauxqs + dynalite on free ports, bootstrapped with a fresh prefix.
 *
 * @example
 * let stack: TestStack;
 * beforeAll(async () => { stack = await startTestStack(); });
 * afterAll(() => stack.stop());
 */
export async function startTestStack(
  options: { bootstrap?: boolean; prefix?: string } = {},
): Promise<TestStack> {
  const emulators = await startEmulators({ sqsPort: 0, dynamoPort: 0 });
  const sqs = createSqsClient({ endpoint: emulators.sqsEndpoint });
  const dynamo = createDynamoBaseClient({ endpoint: emulators.dynamoEndpoint });
  const ddb = createDynamoClient({ endpoint: emulators.dynamoEndpoint });
  const s3 = createS3Client({ endpoint: emulators.sqsEndpoint });
  counter += 1;
  const prefix = options.prefix ?? `t${process.pid % 10000}x${counter}`;
  const report =
    options.bootstrap === false ? { queues: [], tables: [] } : await bootstrap({ sqs, dynamo, s3, prefix });
  return {
    emulators,
    sqs,
    dynamo,
    ddb,
    s3,
    prefix,
    report,
    env: {
      ...emulators.env,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      DEEPQUEUE_PREFIX: prefix,
      DEEPQUEUE_DEV_MODE: "true",
      LOG_LEVEL: "silent",
    },
    async stop() {
      sqs.destroy();
      dynamo.destroy();
      s3.destroy();
      await emulators.stop();
    },
  };
}
