import { setTimeout as sleep } from "node:timers/promises";
import {
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type {
  AcceptedRequest,
  DeliveryState,
  ErrorDetail,
  RequestRecord,
  RequestStatus,
  Result,
  ResultSource,
} from "../../../events/index.ts";
import {
  conditionalWrite,
  epochSeconds,
  isConditionFailure,
  isExpired,
  UnprocessedItemsError,
} from "../dynamo.ts";
import { DeepqueueError } from "../errors.ts";
import { tableName } from "../names.ts";
import { INDEXES, RECENT_SHARDS } from "../resources.ts";

/** How long request records stay readable after creation (like SageMaker Async's output retention). */
const REQUEST_RETENTION_SECONDS = 7 * 24 * 3600;

/** Value of the sparse `open` attribute while a request is not terminal. */
const OPEN = "1";

/** BatchWriteItem's limit (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html). */
export const BATCH_WRITE_MAX_ITEMS = 25;
/** Rounds of retrying a BatchWriteItem's UnprocessedItems (throttling) before those items fail. */
const UNPROCESSED_RETRIES = 4;

/**
 * The key of a request's "processing" marker: a small item of its own, written
 * in batches when the batcher hands the request to the model, so that
 * `processing` costs no conditional single-item write per request. The
 * record's own `status` moves queued → completed | failed (conditionally);
 * a read asking for progress shows `processing` while the marker exists and
 * the record is still queued.
 */
function processingKey(id: string): string {
  return `${id}#processing`;
}

/** Requests one `listRecent` call reads from the indexes at most, so a rare status filter stays cheap. */
const RECENT_READ_BUDGET = 2000;

/** One webhook POST, as `deliver` made it (kept on the record for the dashboard's timeline). */
export interface CallbackAttempt {
  at: string;
  /** delivered (2xx), gone (410: delivery stops) or retry (anything else, or no answer). */
  outcome: "delivered" | "gone" | "retry";
  /** The receiver's HTTP status; absent when it did not answer (timeout, refused connection). */
  status?: number;
  error?: string;
}

/** A line of the recent-requests list: what the two "recent" indexes project. */
export interface RecentRequest {
  id: string;
  tenant: string;
  status: RequestStatus;
  model: string;
  created_at: string;
  completed_at?: string;
  source?: ResultSource;
}

/** A request record as stored: the public record plus what the pipeline needs. */
export interface StoredRequest extends RequestRecord {
  tenant: string;
  /** The accepted request as it travels the queues (prompt/messages and parameters). */
  request: AcceptedRequest;
  /** Epoch milliseconds of `request.deadline_at`, the reconciler's index key. */
  deadline_at: number;
  /** `<tenant>#<conversation_id>` for conversation requests. */
  conversation_key?: string;
  traceparent?: string;
  updated_at: string;
  /** When the batcher handed the request to the model (its processing marker's time; read with `progress`). */
  processing_at?: string;
  /** Every webhook POST made for it, oldest first. */
  callback_attempts?: CallbackAttempt[];
  /** Epoch seconds after which the record is gone (TTL; enforced on read). */
  expires_at: number;
}

export interface TransitionResult {
  /** False when the record was already terminal: the existing record is returned unchanged. */
  applied: boolean;
  record: StoredRequest;
}

/** @example conversationKey("acme", "support-7731") // "acme#support-7731" */
export function conversationKey(tenant: string, conversationId: string): string {
  return `${tenant}#${conversationId}`;
}

/**
 * The `recent-by-day` index partition of a request: its UTC day and a shard
 * taken from the id's last (random) hex digit.
 *
 * @example recentBucket("req_0193…a7", "2026-11-28T06:00:00.000Z") // "2026-11-28#7"
 */
export function recentBucket(id: string, createdAt: string): string {
  return `${createdAt.slice(0, 10)}#${shardOf(id)}`;
}

/**
 * The `by-tenant` index partition: the tenant and the same shard, so one busy
 * tenant's requests spread over RECENT_SHARDS partitions too.
 *
 * @example tenantBucket("acme", "req_0193…a7") // "acme#7"
 */
export function tenantBucket(tenant: string, id: string): string {
  return `${tenant}#${shardOf(id)}`;
}

function shardOf(id: string): number {
  const digit = Number.parseInt(id.at(-1) ?? "0", 16);
  return (Number.isNaN(digit) ? (id.at(-1)?.charCodeAt(0) ?? 0) : digit) % RECENT_SHARDS;
}

/**
 * The public shape (`GET /v1/requests/{id}`, result event `data`) of a stored record: sent as
 * JSON, which leaves the fields a record does not have (undefined) out.
 */
export function toPublicRecord(stored: StoredRequest): RequestRecord {
  return {
    id: stored.id,
    status: stored.status,
    model: stored.model,
    created_at: stored.created_at,
    completed_at: stored.completed_at,
    result: stored.result,
    error: stored.error,
    conversation_id: stored.conversation_id,
    metadata: stored.metadata,
    delivery: stored.delivery,
  };
}

/** The DynamoDB item of a new record: its key, index attributes and the record. */
function newItem(stored: StoredRequest): Record<string, unknown> & { pk: string } {
  return {
    pk: stored.id,
    open: OPEN,
    recent_bucket: recentBucket(stored.id, stored.created_at),
    tenant_bucket: tenantBucket(stored.tenant, stored.id),
    ...stored,
  };
}

/**
 * Request records. Every status change is a conditional single-item write, so
 * concurrent or repeated workers agree on one outcome: the first `complete` or
 * `fail` wins and later ones get the winner back (`applied: false`).
 */
export interface RequestStore {
  create(
    request: AcceptedRequest,
    options?: { traceparent?: string; delivery?: DeliveryState },
  ): Promise<StoredRequest>;
  /**
   * Creates many records in BatchWriteItem calls (no condition: request ids are UUIDv7, new per
   * request). One result per request, in order: the stored record, or the error that kept it out.
   */
  createMany(
    entries: ReadonlyArray<{
      request: AcceptedRequest;
      options?: { traceparent?: string; delivery?: DeliveryState };
    }>,
  ): Promise<Array<StoredRequest | Error>>;
  /** The record; with `progress`, a queued record whose processing marker exists reads as `processing`. */
  get(id: string, options?: { progress?: boolean }): Promise<StoredRequest | undefined>;
  /** Removes a record that is still `queued` (ingest's rollback when the queue send fails). */
  deleteQueued(id: string): Promise<boolean>;
  /** Marks requests as being with the model (their processing markers, in batches). */
  markProcessing(ids: readonly string[]): Promise<void>;
  complete(id: string, result: Result): Promise<TransitionResult>;
  fail(id: string, error: ErrorDetail): Promise<TransitionResult>;
  /** Records the delivery state, and appends `attempt` to the record's callback attempts when given. */
  setDelivery(id: string, delivery: DeliveryState, attempt?: CallbackAttempt): Promise<void>;
  /** Non-terminal records whose deadline has passed, oldest deadline first. */
  listOverdue(now: number, limit?: number): Promise<StoredRequest[]>;
  /** A conversation's requests in arrival order; with `after`, only those with a later id. */
  listConversation(key: string, range?: { after?: string }): Promise<StoredRequest[]>;
}

/** What the dashboard lists requests through (apart from RequestStore: the pipeline never needs it). */
export interface RecentRequests {
  /** Newest first, from the `recent-by-day` or `by-tenant` index (never a scan). */
  listRecent(query?: RecentQuery): Promise<RecentRequest[]>;
}

export interface RecentQuery {
  tenant?: string;
  status?: RequestStatus;
  /** @default 50 */
  limit?: number;
  /** @default new Date() */
  now?: Date;
}

/** @example const requests = new DynamoRequestStore(ddb, "deepqueue"); */
export class DynamoRequestStore implements RequestStore, RecentRequests {
  readonly table: string;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
  ) {
    this.table = tableName(prefix, "requests");
  }

  async create(
    request: AcceptedRequest,
    options: { traceparent?: string; delivery?: DeliveryState } = {},
  ): Promise<StoredRequest> {
    const stored = toStored(request, options);
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: newItem(stored),
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
    return stored;
  }

  async createMany(
    entries: ReadonlyArray<{
      request: AcceptedRequest;
      options?: { traceparent?: string; delivery?: DeliveryState };
    }>,
  ): Promise<Array<StoredRequest | Error>> {
    const stored = entries.map((e) => toStored(e.request, e.options));
    const failed = await this.#batchPut(stored.map(newItem));
    return stored.map((r) => failed.get(r.id) ?? r);
  }

  /** Puts items in BatchWriteItem calls, retrying unprocessed ones; returns the errors by pk. */
  async #batchPut(items: Array<Record<string, unknown> & { pk: string }>): Promise<Map<string, Error>> {
    const failed = new Map<string, Error>();
    for (let i = 0; i < items.length; i += BATCH_WRITE_MAX_ITEMS) {
      let pending = items.slice(i, i + BATCH_WRITE_MAX_ITEMS);
      for (let round = 0; pending.length > 0; round++) {
        let out: BatchWriteCommandOutput;
        try {
          out = await this.ddb.send(
            new BatchWriteCommand({
              RequestItems: { [this.table]: pending.map((Item) => ({ PutRequest: { Item } })) },
            }),
          );
        } catch (error) {
          for (const item of pending) failed.set(item.pk, error as Error);
          break;
        }
        const unprocessed = (out.UnprocessedItems?.[this.table] ?? [])
          .map((r) => r.PutRequest?.Item)
          .filter((item): item is Record<string, unknown> & { pk: string } => Boolean(item));
        if (unprocessed.length === 0) break;
        if (round >= UNPROCESSED_RETRIES) {
          for (const item of unprocessed)
            failed.set(item.pk, new UnprocessedItemsError("DynamoDB left the item unprocessed (throttled)"));
          break;
        }
        // Back off before retrying what DynamoDB left unprocessed, as its docs ask.
        await sleep(25 * 2 ** round);
        pending = unprocessed;
      }
    }
    return failed;
  }

  async get(id: string, options: { progress?: boolean } = {}): Promise<StoredRequest | undefined> {
    const read = (pk: string) =>
      this.ddb.send(new GetCommand({ TableName: this.table, Key: { pk }, ConsistentRead: true }));
    const [out, marker] = await Promise.all([
      read(id),
      options.progress ? read(processingKey(id)) : Promise.resolve(undefined),
    ]);
    if (!out.Item || isExpired(out.Item.expires_at)) return undefined;
    const stored = fromItem(out.Item);
    if (!marker?.Item || isExpired(marker.Item.expires_at)) return stored;
    // The marker's time is when the model got the request; while the record is queued, it is processing.
    const at = String(marker.Item.at ?? stored.updated_at);
    return stored.status === "queued"
      ? { ...stored, status: "processing", updated_at: at, processing_at: at }
      : { ...stored, processing_at: at };
  }

  async deleteQueued(id: string): Promise<boolean> {
    return conditionalWrite(() =>
      this.ddb.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: id },
          ConditionExpression: "#s = :queued",
          ExpressionAttributeNames: { "#s": "status" },
          ExpressionAttributeValues: { ":queued": "queued" },
        }),
      ),
    );
  }

  async markProcessing(ids: readonly string[]): Promise<void> {
    const at = nowIso();
    const expires_at = epochSeconds() + REQUEST_RETENTION_SECONDS;
    const failed = await this.#batchPut(ids.map((id) => ({ pk: processingKey(id), at, expires_at })));
    const first = failed.values().next();
    if (!first.done) throw first.value;
  }

  complete(id: string, result: Result): Promise<TransitionResult> {
    return this.#finish(id, "completed", "result", result);
  }

  fail(id: string, error: ErrorDetail): Promise<TransitionResult> {
    return this.#finish(id, "failed", "error", error);
  }

  async #finish(
    id: string,
    status: RequestStatus,
    field: "result" | "error",
    value: unknown,
  ): Promise<TransitionResult> {
    const now = nowIso();
    // `source` is copied to the top level for the "recent" indexes, which cannot project a nested field.
    const source = field === "result" ? (value as Result).source : undefined;
    try {
      const out = await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: id },
          UpdateExpression: `SET #s = :status, #f = :value, completed_at = :now, updated_at = :now${source ? ", #source = :source" : ""} REMOVE #open`,
          ConditionExpression: "attribute_exists(pk) AND #s IN (:queued, :processing)",
          ExpressionAttributeNames: {
            "#s": "status",
            "#f": field,
            "#open": "open",
            ...(source ? { "#source": "source" } : {}),
          },
          ExpressionAttributeValues: {
            ":status": status,
            ":value": value,
            ...(source ? { ":source": source } : {}),
            ":now": now,
            ":queued": "queued",
            ":processing": "processing",
          },
          ReturnValues: "ALL_NEW",
        }),
      );
      return { applied: true, record: fromItem(out.Attributes!) };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const existing = await this.get(id);
      if (!existing) throw new DeepqueueError(`request ${id} does not exist`, { cause: error });
      return { applied: false, record: existing };
    }
  }

  async setDelivery(id: string, delivery: DeliveryState, attempt?: CallbackAttempt): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: id },
        // The attempt rides on the write that records the state: no extra call per attempt.
        UpdateExpression: attempt
          ? "SET delivery = :d, updated_at = :now, callback_attempts = list_append(if_not_exists(callback_attempts, :none), :attempt)"
          : "SET delivery = :d, updated_at = :now",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: {
          ":d": delivery,
          ":now": nowIso(),
          ...(attempt ? { ":attempt": [attempt], ":none": [] } : {}),
        },
      }),
    );
  }

  async listOverdue(now: number, limit = 100): Promise<StoredRequest[]> {
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: INDEXES.openByDeadline,
        KeyConditionExpression: "#open = :open AND deadline_at <= :now",
        ExpressionAttributeNames: { "#open": "open" },
        ExpressionAttributeValues: { ":open": OPEN, ":now": now },
        Limit: limit,
      }),
    );
    return (out.Items ?? []).map(fromItem);
  }

  async listConversation(key: string, range: { after?: string } = {}): Promise<StoredRequest[]> {
    const items: StoredRequest[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: INDEXES.byConversation,
          KeyConditionExpression: range.after
            ? "conversation_key = :k AND pk > :after"
            : "conversation_key = :k",
          // removeUndefinedValues (clients.ts) drops an undefined :after.
          ExpressionAttributeValues: { ":k": key, ":after": range.after },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) if (!isExpired(item.expires_at)) items.push(fromItem(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  async listRecent(query: RecentQuery = {}): Promise<RecentRequest[]> {
    const limit = query.limit ?? 50;
    const budget = { left: RECENT_READ_BUDGET };
    if (query.tenant) {
      const tenant = query.tenant;
      return this.#newestAcrossShards(INDEXES.byTenant, "tenant_bucket", (shard) => `${tenant}#${shard}`, {
        status: query.status,
        want: limit,
        budget,
      });
    }
    // Day by day, newest first, back to the retention.
    const now = query.now ?? new Date();
    const found: RecentRequest[] = [];
    const days = Math.ceil(REQUEST_RETENTION_SECONDS / 86_400);
    for (let back = 0; back <= days && found.length < limit && budget.left > 0; back++) {
      const day = new Date(now.getTime() - back * 86_400_000).toISOString().slice(0, 10);
      found.push(
        ...(await this.#newestAcrossShards(
          INDEXES.recentByDay,
          "recent_bucket",
          (shard) => `${day}#${shard}`,
          {
            status: query.status,
            want: limit - found.length,
            budget,
          },
        )),
      );
    }
    return found;
  }

  /** Queries every shard of one logical partition in parallel and merges them, newest first. */
  async #newestAcrossShards(
    index: string,
    keyAttribute: "recent_bucket" | "tenant_bucket",
    bucket: (shard: number) => string,
    options: { status?: RequestStatus | undefined; want: number; budget: { left: number } },
  ): Promise<RecentRequest[]> {
    const filter = options.status
      ? {
          FilterExpression: "#s = :status",
          ExpressionAttributeNames: { "#s": "status" },
          ExpressionAttributeValues: { ":status": options.status },
        }
      : { ExpressionAttributeValues: {} };
    const perShard = Math.max(1, Math.ceil(options.budget.left / RECENT_SHARDS));
    const shards = await Promise.all(
      Array.from({ length: RECENT_SHARDS }, (_, shard) =>
        this.#newest(
          {
            IndexName: index,
            KeyConditionExpression: `${keyAttribute} = :bucket`,
            ...filter,
            ExpressionAttributeValues: { ...filter.ExpressionAttributeValues, ":bucket": bucket(shard) },
          },
          options.want,
          perShard,
        ),
      ),
    );
    for (const shard of shards) options.budget.left -= shard.read;
    return shards
      .flatMap((shard) => shard.items)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0))
      .slice(0, options.want);
  }

  /** Pages one index partition newest first until `want` items match or `budget` items were read. */
  async #newest(
    input: {
      IndexName: string;
      KeyConditionExpression: string;
      FilterExpression?: string;
      ExpressionAttributeNames?: Record<string, string>;
      ExpressionAttributeValues: Record<string, unknown>;
    },
    want: number,
    budget: number,
  ): Promise<{ items: RecentRequest[]; read: number }> {
    const items: RecentRequest[] = [];
    let read = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          ...input,
          ScanIndexForward: false,
          Limit: Math.max(1, Math.min(want - items.length, budget - read)),
          ExclusiveStartKey: start,
        }),
      );
      read += out.ScannedCount ?? out.Items?.length ?? 0;
      for (const item of out.Items ?? []) if (!isExpired(item.expires_at)) items.push(toRecent(item));
      start = out.LastEvaluatedKey;
    } while (start && items.length < want && read < budget);
    return { items: items.slice(0, want), read };
  }
}

function toRecent(item: Record<string, unknown>): RecentRequest {
  return {
    id: String(item.id ?? item.pk),
    tenant: String(item.tenant),
    status: item.status as RequestStatus,
    model: String(item.model),
    created_at: String(item.created_at),
    ...(typeof item.completed_at === "string" ? { completed_at: item.completed_at } : {}),
    ...(typeof item.source === "string" ? { source: item.source as ResultSource } : {}),
  };
}

function toStored(
  request: AcceptedRequest,
  options: { traceparent?: string; delivery?: DeliveryState } = {},
): StoredRequest {
  return {
    id: request.id,
    status: "queued",
    model: request.model,
    created_at: request.created_at,
    updated_at: request.created_at,
    tenant: request.tenant,
    request,
    deadline_at: Date.parse(request.deadline_at),
    expires_at: epochSeconds(Date.parse(request.created_at)) + REQUEST_RETENTION_SECONDS,
    ...(request.conversation_id
      ? {
          conversation_id: request.conversation_id,
          conversation_key: conversationKey(request.tenant, request.conversation_id),
        }
      : {}),
    ...(request.metadata ? { metadata: request.metadata } : {}),
    ...(options.traceparent ? { traceparent: options.traceparent } : {}),
    ...(options.delivery ? { delivery: options.delivery } : {}),
  };
}

function nowIso(): string {
  return new Date().toISOString();
}

function fromItem(item: Record<string, unknown>): StoredRequest {
  const {
    pk: _pk,
    open: _open,
    recent_bucket: _recent,
    tenant_bucket: _tenant,
    source: _source,
    ...rest
  } = item;
  return rest as unknown as StoredRequest;
}
