import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { counter, histogram } from "./metrics.ts";

/**
 * AWS calls by service and operation: SQS and DynamoDB bill per call, and calls per request are
 * what the pipeline's CPU cost follows (a batch call serves up to 10 or 25 requests).
 */
const awsCalls = counter("deepqueue_aws_calls_total", "AWS SDK calls made, by service and operation", [
  "service",
  "operation",
]);

/**
 * How long an AWS call took as its caller waited for it (SDK retries included): what an accepted
 * request's 202 and a worker's batch wait on. Buckets from 1 ms: a DynamoDB write is ~5 ms in AWS.
 */
const awsCallSeconds = histogram(
  "deepqueue_aws_call_duration_seconds",
  "AWS SDK call duration as the caller waited for it (retries included), by service and operation",
  ["service", "operation"],
  [0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 10],
);

/** Counts and times every command a client sends (one middleware at the initialize step: no I/O, no copy). */
export function countCalls<C extends { middlewareStack: unknown }>(client: C, service: string): C {
  (client.middlewareStack as SQSClient["middlewareStack"]).add(
    (next, context) => async (args) => {
      const labels = { service, operation: String(context.commandName ?? "unknown").replace(/Command$/, "") };
      awsCalls.inc(labels);
      const started = performance.now();
      try {
        return await next(args);
      } finally {
        awsCallSeconds.observe(labels, (performance.now() - started) / 1000);
      }
    },
    { step: "initialize", name: "deepqueueCallCounter", override: true },
  );
  return client;
}

/**
 * AWS SDK v3 clients. The SDK itself reads `AWS_ENDPOINT_URL_SQS` and
 * `AWS_ENDPOINT_URL_DYNAMODB` (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html),
 * so the same code runs against AWS and the embedded emulators. Against a
 * local endpoint, missing credentials are filled with placeholders: the
 * emulators accept any.
 */
/** The part of a parsed environment (env.ts) the clients read. */
export interface AwsSettings {
  AWS_REGION?: string | undefined;
  AWS_ENDPOINT_URL_SQS?: string | undefined;
  AWS_ENDPOINT_URL_DYNAMODB?: string | undefined;
  AWS_ENDPOINT_URL_S3?: string | undefined;
}

export interface ClientOptions {
  /** Read region and endpoints from this parsed environment instead of process.env. */
  env?: AwsSettings;
  region?: string;
  /** Overrides the endpoint variable (tests start emulators on free ports). */
  endpoint?: string;
  /** Per-attempt SDK retries; the SDK default is 3. */
  maxAttempts?: number;
}

const LOCAL_HOST = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\]|::1)$/;

function isLocal(endpoint: string | undefined): boolean {
  if (!endpoint) return false;
  try {
    return LOCAL_HOST.test(new URL(endpoint).hostname);
  } catch {
    return false;
  }
}

export function baseConfig(endpoint: string | undefined, options: ClientOptions) {
  const settings: AwsSettings = options.env ?? process.env;
  const hasCredentials = Boolean(
    process.env.AWS_ACCESS_KEY_ID || process.env.AWS_PROFILE || process.env.AWS_WEB_IDENTITY_TOKEN_FILE,
  );
  return {
    region: options.region ?? settings.AWS_REGION ?? "us-east-1",
    // Explicit, even when it came from the variable: the SQS client otherwise prefers the host of
    // a QueueUrl over the variable's endpoint (fauxqs answers `sqs.<region>.localhost` URLs).
    ...(endpoint ? { endpoint } : {}),
    ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
    ...(isLocal(endpoint) && !hasCredentials
      ? { credentials: { accessKeyId: "local", secretAccessKey: "local" } }
      : {}),
  };
}

/**
 * @example
 * const sqs = createSqsClient(); // honours AWS_ENDPOINT_URL_SQS
 * const sqs2 = createSqsClient({ env }); // a parsed environment's region and endpoint
 */
export function createSqsClient(options: ClientOptions = {}): SQSClient {
  const endpoint = options.endpoint ?? (options.env ?? process.env).AWS_ENDPOINT_URL_SQS;
  return countCalls(new SQSClient(baseConfig(endpoint, options)), "sqs");
}

/** The plain DynamoDB client (table management); honours AWS_ENDPOINT_URL_DYNAMODB. */
export function createDynamoBaseClient(options: ClientOptions = {}): DynamoDBClient {
  const endpoint = options.endpoint ?? (options.env ?? process.env).AWS_ENDPOINT_URL_DYNAMODB;
  return countCalls(new DynamoDBClient(baseConfig(endpoint, options)), "dynamodb");
}

/** @example const ddb = createDynamoClient(); // a DocumentClient; honours AWS_ENDPOINT_URL_DYNAMODB */
export function createDynamoClient(options: ClientOptions = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(createDynamoBaseClient(options), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
}
