import { type DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { BatchError, BatchObject, BatchStatus, OutputExpiresAfter } from "../../events/index.ts";
import { type ListQuery, OwnedItems, type Page } from "../files/owned-items.ts";
import { conditionalWrite, isConditionFailure } from "../shared/dynamo.ts";
import { tableName } from "../shared/names.ts";

/** How long a batch stays readable after it was created (then DynamoDB TTL removes it). */
export const BATCH_RETENTION_SECONDS = 30 * 24 * 3600;

/**
 * A batch as stored: the public object's fields (counts flattened, so `ADD` can count them) plus
 * the worker's progress. Lines are prepared in chunks of `chunk_lines` (S3 objects); `cursor`
 * chunks have been sent to the batch lane, `dispatched` lines with them.
 */
export interface StoredBatch extends Omit<BatchObject, "request_counts" | "object" | "errors" | "metadata"> {
  tenant: string;
  total: number;
  completed: number;
  failed: number;
  errors: BatchError[] | null;
  metadata: Record<string, string> | null;
  chunks: number;
  chunk_lines: number;
  cursor: number;
  dispatched: number;
  /** Epoch ms of the last change (the sweep looks again at batches that stopped moving). */
  updated_ms: number;
  /** As created with: when the output and error files expire (else OUTPUT_FILE_RETENTION_SECONDS). */
  output_expires_after?: OutputExpiresAfter;
}

/** Timestamps and results a status change sets with it. */
export type BatchChanges = Partial<
  Pick<
    StoredBatch,
    | "in_progress_at"
    | "finalizing_at"
    | "completed_at"
    | "failed_at"
    | "expired_at"
    | "cancelling_at"
    | "cancelled_at"
    | "output_file_id"
    | "error_file_id"
    | "errors"
    | "total"
    | "completed"
    | "failed"
    | "chunks"
    | "chunk_lines"
    | "model"
    | "usage"
  >
>;

/** A new batch, `validating`, with nothing counted or sent yet. */
export function newBatch(
  fields: Pick<
    StoredBatch,
    "id" | "tenant" | "endpoint" | "input_file_id" | "created_at" | "expires_at" | "metadata" | "updated_ms"
  > &
    Partial<Pick<StoredBatch, "output_expires_after">>,
): StoredBatch {
  return {
    ...fields,
    completion_window: "24h",
    status: "validating",
    errors: null,
    output_file_id: null,
    error_file_id: null,
    in_progress_at: null,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    total: 0,
    completed: 0,
    failed: 0,
    chunks: 0,
    chunk_lines: 0,
    cursor: 0,
    dispatched: 0,
  };
}

/** The public `batch` object of a stored batch. */
export function toBatchObject(batch: StoredBatch): BatchObject {
  return {
    id: batch.id,
    object: "batch",
    endpoint: batch.endpoint,
    errors: batch.errors?.length ? { object: "list", data: batch.errors } : null,
    input_file_id: batch.input_file_id,
    completion_window: batch.completion_window,
    status: batch.status,
    output_file_id: batch.output_file_id ?? null,
    error_file_id: batch.error_file_id ?? null,
    created_at: batch.created_at,
    in_progress_at: batch.in_progress_at ?? null,
    expires_at: batch.expires_at ?? null,
    finalizing_at: batch.finalizing_at ?? null,
    completed_at: batch.completed_at ?? null,
    failed_at: batch.failed_at ?? null,
    expired_at: batch.expired_at ?? null,
    cancelling_at: batch.cancelling_at ?? null,
    cancelled_at: batch.cancelled_at ?? null,
    request_counts: { total: batch.total, completed: batch.completed, failed: batch.failed },
    metadata: batch.metadata ?? null,
    // Both are set when the batch ends; before that OpenAI's object has neither.
    ...(batch.model ? { model: batch.model } : {}),
    ...(batch.usage ? { usage: batch.usage } : {}),
  };
}

/**
 * Batches. Every status change is conditional on the statuses it may leave, so a repeated or
 * concurrent worker step applies once; counts are atomic `ADD`s.
 */
export interface BatchStore {
  create(batch: StoredBatch): Promise<void>;
  /** Own tenant only: another tenant's batch reads as absent. */
  get(tenant: string, id: string): Promise<StoredBatch | undefined>;
  /** Any tenant's (the worker). */
  load(id: string): Promise<StoredBatch | undefined>;
  list(tenant: string, query: ListQuery): Promise<Page<StoredBatch>>;
  /** Moves the batch from one of `from` to `to`, setting `changes`; the new batch, or undefined when it was not in `from`. */
  transition(
    id: string,
    from: readonly BatchStatus[],
    to: BatchStatus,
    changes?: BatchChanges,
  ): Promise<StoredBatch | undefined>;
  /** Adds finished lines to the counts (while the batch is open); the batch after, or undefined when it is not open. */
  count(id: string, completed: number, failed: number): Promise<StoredBatch | undefined>;
  /**
   * Records that chunk `cursor` was sent (`lines` lines, `prefailed` of them failed without a model call):
   * true for the one caller that moved the cursor from `cursor`.
   */
  advance(id: string, cursor: number, lines: number, prefailed: number): Promise<boolean>;
  /** Sets the counts read back from the line records (repairs counts a duplicate message skewed). */
  recount(id: string, completed: number, failed: number): Promise<void>;
}

const OPEN: readonly BatchStatus[] = ["in_progress", "cancelling"];

/** @example const batches = new DynamoBatchStore(ddb, "deepqueue"); */
export class DynamoBatchStore implements BatchStore {
  readonly #ddb: DynamoDBDocumentClient;
  readonly #items: OwnedItems;
  readonly #now: () => number;

  constructor(ddb: DynamoDBDocumentClient, prefix: string, options: { now?: () => number } = {}) {
    this.#ddb = ddb;
    this.#items = new OwnedItems(ddb, tableName(prefix, "batches"));
    this.#now = options.now ?? Date.now;
  }

  async create(batch: StoredBatch): Promise<void> {
    await this.#ddb.send(
      new PutCommand({
        TableName: this.#items.table,
        Item: { pk: batch.id, ...batch, retain_until: batch.created_at + BATCH_RETENTION_SECONDS },
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
  }

  async get(tenant: string, id: string): Promise<StoredBatch | undefined> {
    const item = await this.#items.get(tenant, id);
    return item ? fromItem(item) : undefined;
  }

  async load(id: string): Promise<StoredBatch | undefined> {
    const out = await this.#ddb.send(
      new GetCommand({ TableName: this.#items.table, Key: { pk: id }, ConsistentRead: true }),
    );
    return out.Item ? fromItem(out.Item) : undefined;
  }

  async list(tenant: string, query: ListQuery): Promise<Page<StoredBatch>> {
    const page = await this.#items.list(tenant, query);
    return { data: page.data.map(fromItem), has_more: page.has_more };
  }

  async transition(
    id: string,
    from: readonly BatchStatus[],
    to: BatchStatus,
    changes: BatchChanges = {},
  ): Promise<StoredBatch | undefined> {
    const set = { status: to, updated_ms: this.#now(), ...changes };
    const names = Object.fromEntries(Object.keys(set).map((k, n) => [`#a${n}`, k]));
    const values = Object.fromEntries(Object.values(set).map((v, n) => [`:a${n}`, v]));
    const fromValues = Object.fromEntries(from.map((s, n) => [`:f${n}`, s]));
    return this.#update({
      UpdateExpression: `SET ${Object.keys(set)
        .map((_, n) => `#a${n} = :a${n}`)
        .join(", ")}`,
      ConditionExpression: `#a0 IN (${Object.keys(fromValues).join(", ")})`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ...values, ...fromValues },
      Key: { pk: id },
    });
  }

  async count(id: string, completed: number, failed: number): Promise<StoredBatch | undefined> {
    return this.#update({
      Key: { pk: id },
      UpdateExpression: "ADD #c :c, #f :f SET updated_ms = :now",
      ConditionExpression: "#s IN (:o0, :o1)",
      ExpressionAttributeNames: { "#s": "status", "#c": "completed", "#f": "failed" },
      ExpressionAttributeValues: {
        ":c": completed,
        ":f": failed,
        ":now": this.#now(),
        ":o0": OPEN[0],
        ":o1": OPEN[1],
      },
    });
  }

  async advance(id: string, cursor: number, lines: number, prefailed: number): Promise<boolean> {
    return conditionalWrite(() =>
      this.#ddb.send(
        new UpdateCommand({
          TableName: this.#items.table,
          Key: { pk: id },
          UpdateExpression: "SET #cursor = :next, updated_ms = :now ADD #d :n, #f :p",
          ConditionExpression: "#cursor = :cursor",
          ExpressionAttributeNames: { "#cursor": "cursor", "#d": "dispatched", "#f": "failed" },
          ExpressionAttributeValues: {
            ":cursor": cursor,
            ":next": cursor + 1,
            ":n": lines,
            ":p": prefailed,
            ":now": this.#now(),
          },
        }),
      ),
    );
  }

  async recount(id: string, completed: number, failed: number): Promise<void> {
    await this.#ddb.send(
      new UpdateCommand({
        TableName: this.#items.table,
        Key: { pk: id },
        UpdateExpression: "SET #c = :c, #f = :f, updated_ms = :now",
        ExpressionAttributeNames: { "#c": "completed", "#f": "failed" },
        ExpressionAttributeValues: { ":c": completed, ":f": failed, ":now": this.#now() },
      }),
    );
  }

  async #update(
    input: Omit<ConstructorParameters<typeof UpdateCommand>[0], "TableName">,
  ): Promise<StoredBatch | undefined> {
    try {
      const out = await this.#ddb.send(
        new UpdateCommand({ TableName: this.#items.table, ReturnValues: "ALL_NEW", ...input }),
      );
      return out.Attributes ? fromItem(out.Attributes) : undefined;
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }
}

function fromItem(item: Record<string, unknown>): StoredBatch {
  const { pk: _pk, retain_until: _retain, ...rest } = item;
  return rest as unknown as StoredBatch;
}
