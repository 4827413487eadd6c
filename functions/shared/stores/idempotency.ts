import { createHash } from "node:crypto";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { conditionalWrite, epochSeconds, isConditionFailure, isExpired } from "../dynamo.ts";
import { DeepqueueError } from "../errors.ts";
import { tableName } from "../names.ts";

/**
 * `Idempotency-Key` records (docs/api.md#post-v1requests, after the IETF httpapi idempotency-key
 * draft) and seen Standard Webhooks ids, in the `<prefix>-idempotency` table
 * with Powertools' layout (`id`, `expiration`, `status`, `in_progress_expiry`).
 *
 * Why not Powertools' IdempotencyHandler itself: the API needs three outcomes it
 * folds together or leaves out (200 replay vs 202 first accept, 409 while in
 * progress, 422 on a different body), a key scoped per tenant and taken from a
 * header, a fingerprint of the raw body, and "in progress" that expires on its
 * own off Lambda (Powertools derives it from the Lambda context's remaining
 * time). One conditional put and a consistent read give all of it.
 */

/** Powertools' status values, so the items read the same in either tool. */
export const IDEMPOTENCY_STATUS = { inProgress: "INPROGRESS", completed: "COMPLETED" } as const;
export type IdempotencyStatus = (typeof IDEMPOTENCY_STATUS)[keyof typeof IDEMPOTENCY_STATUS];

export class IdempotencyConflictError extends DeepqueueError {
  /** `in_progress`: another request with this key is being accepted; `reused`: the key came with a different body. */
  readonly reason: "in_progress" | "reused";
  constructor(reason: "in_progress" | "reused") {
    super(
      reason === "in_progress"
        ? "idempotency key in progress"
        : "idempotency key reused with a different body",
    );
    this.name = "IdempotencyConflictError";
    this.reason = reason;
  }
}

export type BeginOutcome<R> = { state: "started" } | { state: "completed"; response: R; requestId: string };

export interface IdempotencyOptions {
  /** How long a key is remembered. @default 86400 (at least 24 hours, as documented) */
  ttlSeconds?: number;
  /** How long an unfinished key blocks others before it may be taken over. @default 30 */
  inProgressSeconds?: number;
}

export interface IdempotencyStore<R = unknown> {
  /**
   * Claims `key` for `requestId` (a conditional put). Throws IdempotencyConflictError
   * when the key is held by an unfinished request or was used with another body;
   * returns the stored response when the same body was already accepted.
   */
  begin(
    tenant: string,
    key: string,
    fingerprint: string,
    requestId: string,
    now?: Date,
  ): Promise<BeginOutcome<R>>;
  /** Stores the response of the request that claimed the key. */
  complete(tenant: string, key: string, requestId: string, response: R): Promise<void>;
  /** Frees a key whose request was not accepted, so a retry can proceed. */
  abandon(tenant: string, key: string, requestId: string): Promise<void>;
}

/** The fingerprint of a body: SHA-256 of its exact bytes. */
export function bodyFingerprint(body: string | Buffer): string {
  return createHash("sha256").update(body).digest("hex");
}

function recordId(tenant: string, key: string): string {
  return `idem#${tenant}#${createHash("sha256").update(key).digest("hex")}`;
}

/** @example const keys = new DynamoIdempotencyStore(ddb, "deepqueue"); */
export class DynamoIdempotencyStore<R = unknown> implements IdempotencyStore<R> {
  readonly table: string;
  readonly #ttlSeconds: number;
  readonly #inProgressMs: number;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
    options: IdempotencyOptions = {},
  ) {
    this.table = tableName(prefix, "idempotency");
    this.#ttlSeconds = options.ttlSeconds ?? 86_400;
    this.#inProgressMs = (options.inProgressSeconds ?? 30) * 1000;
  }

  async begin(
    tenant: string,
    key: string,
    fingerprint: string,
    requestId: string,
    now: Date = new Date(),
  ): Promise<BeginOutcome<R>> {
    const id = recordId(tenant, key);
    // Two tries: the item we lost to may expire or be abandoned between our put and our read.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        await this.ddb.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              id,
              status: IDEMPOTENCY_STATUS.inProgress,
              fingerprint,
              request_id: requestId,
              in_progress_expiry: now.getTime() + this.#inProgressMs,
              expiration: epochSeconds(now) + this.#ttlSeconds,
            },
            ConditionExpression:
              "attribute_not_exists(id) OR expiration <= :now OR (#s = :inProgress AND in_progress_expiry < :nowMs)",
            ExpressionAttributeNames: { "#s": "status" },
            ExpressionAttributeValues: {
              ":now": epochSeconds(now),
              ":nowMs": now.getTime(),
              ":inProgress": IDEMPOTENCY_STATUS.inProgress,
            },
          }),
        );
        return { state: "started" };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      const out = await this.ddb.send(
        new GetCommand({ TableName: this.table, Key: { id }, ConsistentRead: true }),
      );
      const item = out.Item;
      if (!item || isExpired(item.expiration, now.getTime())) continue;
      if (item.fingerprint !== fingerprint) throw new IdempotencyConflictError("reused");
      if (item.status === IDEMPOTENCY_STATUS.completed) {
        return {
          state: "completed",
          response: JSON.parse(String(item.response)) as R,
          requestId: String(item.request_id),
        };
      }
      throw new IdempotencyConflictError("in_progress");
    }
    throw new IdempotencyConflictError("in_progress");
  }

  async complete(tenant: string, key: string, requestId: string, response: R): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { id: recordId(tenant, key) },
        UpdateExpression: "SET #s = :completed, #r = :response REMOVE in_progress_expiry",
        ConditionExpression: "request_id = :rid",
        ExpressionAttributeNames: { "#s": "status", "#r": "response" },
        ExpressionAttributeValues: {
          ":completed": IDEMPOTENCY_STATUS.completed,
          ":response": JSON.stringify(response),
          ":rid": requestId,
        },
      }),
    );
  }

  async abandon(tenant: string, key: string, requestId: string): Promise<void> {
    try {
      await this.ddb.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { id: recordId(tenant, key) },
          ConditionExpression: "request_id = :rid",
          ExpressionAttributeValues: { ":rid": requestId },
        }),
      );
    } catch (error) {
      // Someone else took the key over meanwhile: theirs now, nothing to free.
      if (!isConditionFailure(error)) throw error;
    }
  }
}

/**
 * Ids seen once within a window: Standard Webhooks `webhook-id`s, so a
 * captured signed request cannot be replayed while its timestamp is still fresh.
 */
export interface SeenIds {
  /** True the first time `id` is claimed in `scope` (a conditional put), false on a repeat. */
  claim(scope: string, id: string, ttlSeconds: number, now?: Date): Promise<boolean>;
  /** Forgets a claim (the request it came with was not accepted, so its retry must pass). */
  release(scope: string, id: string): Promise<void>;
}

/** @example const seen = new DynamoSeenIds(ddb, "deepqueue"); await seen.claim("acme", "msg_1", 600); */
export class DynamoSeenIds implements SeenIds {
  readonly table: string;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
  ) {
    this.table = tableName(prefix, "idempotency");
  }

  async claim(scope: string, id: string, ttlSeconds: number, now: Date = new Date()): Promise<boolean> {
    return conditionalWrite(() =>
      this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: { id: seenId(scope, id), expiration: epochSeconds(now) + ttlSeconds },
          ConditionExpression: "attribute_not_exists(id) OR expiration <= :now",
          ExpressionAttributeValues: { ":now": epochSeconds(now) },
        }),
      ),
    );
  }

  async release(scope: string, id: string): Promise<void> {
    await this.ddb.send(new DeleteCommand({ TableName: this.table, Key: { id: seenId(scope, id) } }));
  }
}

function seenId(scope: string, id: string): string {
  return `seen#${scope}#${createHash("sha256").update(id).digest("hex")}`;
}
