/**
 * Names of every queue and table deepqueue owns, derived from one prefix.
 * docs/api.md#the-flow: `<prefix>-requests`, `<prefix>-inference`, `<prefix>-delivery`, each with
 * `<name>-dlq`, and one `<prefix>-results-<tenant>` (+ `-dlq`) per tenant.
 */

export const DEFAULT_PREFIX = "deepqueue";

/**
 * The pipeline's own queues, in the order a request travels. `inference-batch` is the batch lane:
 * lines of a batch (POST /v1/batches) wait there, and the batcher serves them only after
 * interactive work on `inference`. `batches` carries the batch worker's small control messages
 * (validate a batch, a line finished, look again), never requests.
 */
export const PIPELINE_QUEUES = ["requests", "inference", "inference-batch", "delivery", "batches"] as const;
export type PipelineQueue = (typeof PIPELINE_QUEUES)[number];

/** The DynamoDB tables, one per kind of state. */
export const TABLES = [
  "requests",
  "tenants",
  "usage",
  "cache",
  "conversations",
  "idempotency",
  "files",
  "batches",
] as const;
export type TableKind = (typeof TABLES)[number];

/** Suffix of every dead-letter queue. */
export const DLQ_SUFFIX = "-dlq";

/**
 * Tenant names become part of queue names (SQS allows 80 characters of
 * `[A-Za-z0-9_-]`), so they are kept short, lower-case and hyphenated.
 */
const TENANT_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

/** Prefixes are also part of every name; same alphabet, kept short. */
export const PREFIX_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$/;

/** @example queueName("deepqueue", "requests") // "deepqueue-requests" */
export function queueName(prefix: string, queue: PipelineQueue): string {
  return `${prefix}-${queue}`;
}

/** @example resultQueueName("deepqueue", "acme") // "deepqueue-results-acme" */
export function resultQueueName(prefix: string, tenant: string): string {
  return `${prefix}-results-${tenant}`;
}

/** @example dlqName("deepqueue-requests") // "deepqueue-requests-dlq" */
export function dlqName(queue: string): string {
  return `${queue}${DLQ_SUFFIX}`;
}

/** @example tableName("deepqueue", "cache") // "deepqueue-cache" */
export function tableName(prefix: string, table: TableKind): string {
  return `${prefix}-${table}`;
}

/** The S3 bucket of uploaded files and batch results. @example filesBucketName("deepqueue") // "deepqueue-files" */
export function filesBucketName(prefix: string): string {
  return `${prefix}-files`;
}

/** Returns an error message when `tenant` is not a valid tenant name, else undefined. */
export function tenantNameProblem(tenant: string): string | undefined {
  if (TENANT_NAME_PATTERN.test(tenant)) return undefined;
  return `tenant name "${tenant}" must be 1-32 characters of a-z, 0-9 and '-', starting and ending with a letter or digit (it becomes part of the result queue's name)`;
}
