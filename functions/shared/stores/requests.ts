import {
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
} from "../../../events/index.ts";
import { conditionalWrite, epochSeconds, isConditionFailure, isExpired } from "../dynamo.ts";
import { tableName } from "../names.ts";
import { INDEXES } from "../resources.ts";

/** How long request records stay readable after creation (like SageMaker Async's output retention). */
export const REQUEST_RETENTION_SECONDS = 7 * 24 * 3600;

/** Value of the sparse `open` attribute while a request is not terminal. */
const OPEN = "1";

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

/** The public shape (`GET /v1/requests/{id}`, result event `data`) of a stored record. */
export function toPublicRecord(stored: StoredRequest): RequestRecord {
  return {
    id: stored.id,
    status: stored.status,
    model: stored.model,
    created_at: stored.created_at,
    ...(stored.completed_at ? { completed_at: stored.completed_at } : {}),
    ...(stored.result ? { result: stored.result } : {}),
    ...(stored.error ? { error: stored.error } : {}),
    ...(stored.conversation_id ? { conversation_id: stored.conversation_id } : {}),
    ...(stored.metadata ? { metadata: stored.metadata } : {}),
    ...(stored.delivery ? { delivery: stored.delivery } : {}),
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
  get(id: string): Promise<StoredRequest | undefined>;
  /** Removes a record that is still `queued` (ingest's rollback when the queue send fails). */
  deleteQueued(id: string): Promise<boolean>;
  /** `queued` → `processing`; false when it was not queued. */
  markProcessing(id: string): Promise<boolean>;
  complete(id: string, result: Result): Promise<TransitionResult>;
  fail(id: string, error: ErrorDetail): Promise<TransitionResult>;
  setDelivery(id: string, delivery: DeliveryState): Promise<void>;
  /** Non-terminal records whose deadline has passed, oldest deadline first. */
  listOverdue(now: number, limit?: number): Promise<StoredRequest[]>;
  /** A conversation's requests in arrival order; with `after`, only those with a later id. */
  listConversation(key: string, range?: { after?: string }): Promise<StoredRequest[]>;
}

/** @example const requests = new DynamoRequestStore(ddb, "deepqueue"); */
export class DynamoRequestStore implements RequestStore {
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
    const stored: StoredRequest = {
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
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: { pk: stored.id, open: OPEN, ...stored },
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
    return stored;
  }

  async get(id: string): Promise<StoredRequest | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.table, Key: { pk: id }, ConsistentRead: true }),
    );
    if (!out.Item || isExpired(out.Item.expires_at)) return undefined;
    return fromItem(out.Item);
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

  async markProcessing(id: string): Promise<boolean> {
    return conditionalWrite(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: id },
          UpdateExpression: "SET #s = :processing, updated_at = :now",
          ConditionExpression: "#s = :queued",
          ExpressionAttributeNames: { "#s": "status" },
          ExpressionAttributeValues: { ":processing": "processing", ":queued": "queued", ":now": nowIso() },
        }),
      ),
    );
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
    try {
      const out = await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: id },
          UpdateExpression:
            "SET #s = :status, #f = :value, completed_at = :now, updated_at = :now REMOVE #open",
          ConditionExpression: "attribute_exists(pk) AND #s IN (:queued, :processing)",
          ExpressionAttributeNames: { "#s": "status", "#f": field, "#open": "open" },
          ExpressionAttributeValues: {
            ":status": status,
            ":value": value,
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
      if (!existing) throw new Error(`request ${id} does not exist`, { cause: error });
      return { applied: false, record: existing };
    }
  }

  async setDelivery(id: string, delivery: DeliveryState): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: id },
        UpdateExpression: "SET delivery = :d, updated_at = :now",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":d": delivery, ":now": nowIso() },
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
          ExpressionAttributeValues: { ":k": key, ...(range.after ? { ":after": range.after } : {}) },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) if (!isExpired(item.expires_at)) items.push(fromItem(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }
}

function nowIso(): string {
  return new Date().toISOString();
}

function fromItem(item: Record<string, unknown>): StoredRequest {
  const { pk: _pk, open: _open, ...rest } = item;
  return rest as unknown as StoredRequest;
}
