import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  ResourceNotFoundException,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { CreateBucketCommand, HeadBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  QueueDoesNotExist,
  SetQueueAttributesCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { dlqName, filesBucketName, PIPELINE_QUEUES, queueName, TABLES, tableName } from "./names.ts";
import {
  attributeDefinitions,
  createTableInput,
  indexInput,
  QUEUE_DEFAULTS,
  TABLE_SPECS,
  type TableSpec,
} from "./resources.ts";

export interface QueueReport {
  name: string;
  url: string;
  dlqUrl: string;
  created: boolean;
}

export interface TableReport {
  name: string;
  created: boolean;
  /** "enabled" (already or now), "unsupported" (the endpoint has no TTL API: expiry is enforced in code), or "none". */
  ttl: "enabled" | "unsupported" | "none";
  /** Indexes an existing table lacked and that were requested now (DynamoDB backfills them in the background). */
  indexesAdded?: string[];
  /** Indexes the table lacks and the endpoint would not add (an emulator): recreate the table to get them. */
  indexesMissing?: string[];
}

export interface BucketReport {
  name: string;
  created: boolean;
}

export interface BootstrapReport {
  queues: QueueReport[];
  tables: TableReport[];
  /** The files bucket (uploaded files, batch results), when an S3 client was given. */
  buckets?: BucketReport[];
}

async function queueUrl(sqs: SQSClient, name: string): Promise<string | undefined> {
  try {
    return (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
  } catch (error) {
    if (error instanceof QueueDoesNotExist || (error as { name?: string }).name?.includes("NonExistentQueue"))
      return undefined;
    throw error;
  }
}

/**
 * Creates `name` and `name-dlq` with a redrive policy (maxReceiveCount 5),
 * or leaves them as they are when they exist. Safe to repeat.
 *
 * @example await ensureQueueWithDlq(sqs, "deepqueue-results-acme");
 */
export async function ensureQueueWithDlq(sqs: SQSClient, name: string): Promise<QueueReport> {
  const existing = await queueUrl(sqs, name);
  const dlq = dlqName(name);
  const dlqUrl =
    (await queueUrl(sqs, dlq)) ??
    (
      await sqs.send(
        new CreateQueueCommand({
          QueueName: dlq,
          Attributes: { MessageRetentionPeriod: String(QUEUE_DEFAULTS.dlqRetentionSeconds) },
        }),
      )
    ).QueueUrl!;
  const dlqArn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] }))
  ).Attributes?.QueueArn;
  const redrivePolicy = JSON.stringify({
    deadLetterTargetArn: dlqArn,
    maxReceiveCount: QUEUE_DEFAULTS.maxReceiveCount,
  });
  if (existing) {
    // An existing queue keeps its settings, but must dead-letter (a queue made by hand may not).
    const attrs = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: existing, AttributeNames: ["RedrivePolicy"] }),
    );
    if (!attrs.Attributes?.RedrivePolicy) {
      await sqs.send(
        new SetQueueAttributesCommand({ QueueUrl: existing, Attributes: { RedrivePolicy: redrivePolicy } }),
      );
    }
    return { name, url: existing, dlqUrl, created: false };
  }
  const created = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(QUEUE_DEFAULTS.visibilityTimeoutSeconds),
        MessageRetentionPeriod: String(QUEUE_DEFAULTS.retentionSeconds),
        RedrivePolicy: redrivePolicy,
      },
    }),
  );
  return { name, url: created.QueueUrl!, dlqUrl, created: true };
}

async function ensureTable(
  ddb: DynamoDBClient,
  prefix: string,
  kind: (typeof TABLES)[number],
): Promise<TableReport> {
  const spec = TABLE_SPECS[kind];
  const name = tableName(prefix, kind);
  let created = false;
  let indexes: Pick<TableReport, "indexesAdded" | "indexesMissing"> = {};
  try {
    const described = await ddb.send(new DescribeTableCommand({ TableName: name }));
    const present = new Set((described.Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName));
    indexes = await addMissingIndexes(ddb, name, spec, present);
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
    await ddb.send(new CreateTableCommand(createTableInput(prefix, spec)));
    created = true;
  }
  if (!spec.ttlAttribute) return { name, created, ttl: "none", ...indexes };
  try {
    const ttl = await ddb.send(new DescribeTimeToLiveCommand({ TableName: name }));
    const status = ttl.TimeToLiveDescription?.TimeToLiveStatus;
    if (status !== "ENABLED" && status !== "ENABLING") {
      await ddb.send(
        new UpdateTimeToLiveCommand({
          TableName: name,
          TimeToLiveSpecification: { Enabled: true, AttributeName: spec.ttlAttribute },
        }),
      );
    }
    return { name, created, ttl: "enabled", ...indexes };
  } catch (error) {
    // dynalite (and some other emulators) have no TTL API; expiry is enforced in code anyway.
    const errorName = (error as { name?: string }).name ?? "";
    if (/UnknownOperation|NotImplemented|UnrecognizedClient|InvalidAction/i.test(errorName)) {
      return { name, created, ttl: "unsupported", ...indexes };
    }
    throw error;
  }
}

/**
 * Adds the indexes a newer release defines to a table an older one created.
 * DynamoDB takes one new GSI per UpdateTable and backfills it while the table
 * stays usable (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.OnlineOps.html);
 * a second creation while one is building is refused, so a later bootstrap
 * adds the rest. dynalite cannot add an index to an existing table: what is
 * still absent afterwards is reported as missing.
 */
async function addMissingIndexes(
  ddb: DynamoDBClient,
  name: string,
  spec: TableSpec,
  present: Set<string | undefined>,
): Promise<Pick<TableReport, "indexesAdded" | "indexesMissing">> {
  const missing = (spec.indexes ?? []).filter((index) => !present.has(index.name));
  if (missing.length === 0) return {};
  const added: string[] = [];
  for (const index of missing) {
    try {
      await ddb.send(
        new UpdateTableCommand({
          TableName: name,
          AttributeDefinitions: attributeDefinitions(spec, [index]),
          GlobalSecondaryIndexUpdates: [{ Create: indexInput(index) }],
        }),
      );
      added.push(index.name);
    } catch (error) {
      // One index is already building (LimitExceeded / ResourceInUse): the next bootstrap adds the
      // rest. dynalite validates an index creation as for a provisioned table and refuses it.
      const { name: errorName = "", message = "" } = error as { name?: string; message?: string };
      const emulatorRefusal = errorName === "ValidationException" && /provisionedThroughput/i.test(message);
      if (!/LimitExceeded|ResourceInUse/.test(errorName) && !emulatorRefusal) throw error;
      break;
    }
  }
  const after = await ddb.send(new DescribeTableCommand({ TableName: name }));
  const now = new Set((after.Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName));
  const stillMissing = missing.filter((index) => !now.has(index.name)).map((index) => index.name);
  return {
    ...(added.some((n) => now.has(n)) ? { indexesAdded: added.filter((n) => now.has(n)) } : {}),
    ...(stillMissing.length ? { indexesMissing: stillMissing } : {}),
  };
}

/** Creates the bucket `name` unless it exists (HeadBucket answers). Safe to repeat. */
export async function ensureBucket(s3: S3Client, name: string): Promise<BucketReport> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: name }));
    return { name, created: false };
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== 404 && (error as { name?: string }).name !== "NotFound") throw error;
  }
  await s3.send(new CreateBucketCommand({ Bucket: name }));
  return { name, created: true };
}

/**
 * Creates, idempotently, the pipeline's queues (each with a DLQ and a redrive
 * policy), every DynamoDB table at the configured endpoints and, given an S3
 * client, the files bucket (`<prefix>-files`).
 *
 * @example const report = await bootstrap({ sqs, dynamo, s3, prefix: "deepqueue" });
 */
export async function bootstrap(deps: {
  sqs: SQSClient;
  dynamo: DynamoDBClient;
  s3?: S3Client;
  prefix: string;
}): Promise<BootstrapReport> {
  const queues: QueueReport[] = [];
  for (const queue of PIPELINE_QUEUES)
    queues.push(await ensureQueueWithDlq(deps.sqs, queueName(deps.prefix, queue)));
  const tables: TableReport[] = [];
  for (const kind of TABLES) tables.push(await ensureTable(deps.dynamo, deps.prefix, kind));
  if (!deps.s3) return { queues, tables };
  return { queues, tables, buckets: [await ensureBucket(deps.s3, filesBucketName(deps.prefix))] };
}
