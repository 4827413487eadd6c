import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { FilesApi } from "../files/files.ts";
import { S3FileStore } from "../files/store.ts";
import type { Authenticator } from "../ingest/auth.ts";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createLogger, type Logger } from "../shared/logger.ts";
import { queueName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import { createS3Client } from "../shared/s3-client.ts";
import { BatchSender } from "../shared/sqs-records.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { DynamoUsageStore } from "../shared/stores/usage.ts";
import { countPromptTokens } from "../shared/tokenizer.ts";
import { BatchesApi } from "./api.ts";
import { type BatchesEnv, loadBatchesEnv } from "./config.ts";
import { LineDispatcher } from "./dispatch.ts";
import { BatchFinalizer } from "./finalize.ts";
import { BatchLines } from "./lines.ts";
import { DynamoBatchStore } from "./store.ts";
import { BatchWorker } from "./worker.ts";

/** Clients the Batch API's parts share; each is built from the environment when not given. */
export interface BatchClients {
  sqs?: SQSClient;
  ddb?: DynamoDBDocumentClient;
  s3?: S3Client;
  logger?: Logger;
}

/** The OpenAI-compatible file and batch routes' logic, as ingest routes them. */
export interface BatchApi {
  files: FilesApi;
  batches: BatchesApi;
}

function clients(env: BatchesEnv, given: BatchClients) {
  return {
    sqs: given.sqs ?? createSqsClient({ env }),
    ddb: given.ddb ?? createDynamoClient({ env }),
    s3: given.s3 ?? createS3Client({ env }),
  };
}

/**
 * The Files and Batches APIs for ingest, sharing its authenticator (and so its key cache).
 *
 * @example const api = batchApiFromEnv(process.env, { auth: deps.auth, logger: deps.logger });
 */
export function batchApiFromEnv(
  source: Record<string, string | undefined>,
  shared: BatchClients & { auth: Pick<Authenticator, "authenticate">; logger: Logger },
): BatchApi {
  const env = loadBatchesEnv(source);
  const { sqs, ddb, s3 } = clients(env, shared);
  const files = new S3FileStore({ ddb, s3, prefix: env.DEEPQUEUE_PREFIX });
  const control = new BatchSender(sqs, () =>
    new QueueUrls(sqs).get(queueName(env.DEEPQUEUE_PREFIX, "batches")),
  );
  return {
    files: new FilesApi({ files, auth: shared.auth, maxBytes: env.DEEPQUEUE_FILES_MAX_BYTES }),
    batches: new BatchesApi({
      batches: new DynamoBatchStore(ddb, env.DEEPQUEUE_PREFIX),
      files,
      auth: shared.auth,
      control: (message) => control.send(message),
      logger: shared.logger,
      windowSeconds: env.DEEPQUEUE_BATCH_WINDOW_SECONDS,
    }),
  };
}

/**
 * The batch worker with its dependencies from `source` (default `process.env`): what
 * `deepqueue serve batches` runs.
 *
 * @example const worker = batchesDepsFromEnv(process.env).worker;
 */
export function batchesDepsFromEnv(
  source: Record<string, string | undefined> = process.env,
  given: BatchClients & { now?: () => number } = {},
) {
  const env = loadBatchesEnv(source);
  const { sqs, ddb, s3 } = clients(env, given);
  const prefix = env.DEEPQUEUE_PREFIX;
  const logger = given.logger ?? createLogger({ name: "batches", level: env.LOG_LEVEL });
  const queueUrls = new QueueUrls(sqs);
  const files = new S3FileStore({ ddb, s3, prefix });
  const batches = new DynamoBatchStore(ddb, prefix, given.now ? { now: given.now } : {});
  const lines = new BatchLines({ s3, ddb, prefix });
  const requests = new DynamoRequestStore(ddb, prefix);
  const worker = new BatchWorker({
    batches,
    files,
    lines,
    dispatcher: new LineDispatcher({
      lines,
      requests,
      usage: new DynamoUsageStore(ddb, prefix),
      tenants: new DynamoTenantStore(ddb, prefix),
      lane: new BatchSender(sqs, () => queueUrls.get(queueName(prefix, "inference-batch"))),
      defaultModel: env.DEEPQUEUE_MODEL,
      logger,
    }),
    finalizer: new BatchFinalizer({
      batches,
      files,
      lines,
      sqs,
      queueUrls,
      prefix,
      logger,
      ...(given.now ? { now: given.now } : {}),
    }),
    countTokens: countPromptTokens,
    maxModelLen: env.DEEPQUEUE_MAX_MODEL_LEN,
    logger,
    window: env.DEEPQUEUE_BATCH_WINDOW,
    chunkLines: env.DEEPQUEUE_BATCH_CHUNK_LINES,
    ...(given.now ? { now: given.now } : {}),
  });
  return { worker, batches, requests, logger, sqs, queueUrls, prefix };
}
export type BatchesDeps = ReturnType<typeof batchesDepsFromEnv>;
