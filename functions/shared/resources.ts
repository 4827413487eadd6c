import type { AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement } from "@aws-sdk/client-dynamodb";
import { type TableKind, tableName } from "./names.ts";

/**
 * Every DynamoDB table deepqueue owns: key schema, secondary indexes and the
 * attribute that holds its expiry. Expiry is enforced in code on every read
 * (DynamoDB TTL deletes lazily, up to days late, and dynalite has no TTL); the
 * TTL setting only keeps the tables from growing.
 */
export interface TableSpec {
  kind: TableKind;
  partitionKey: string;
  sortKey?: string;
  /** Epoch-seconds attribute DynamoDB TTL deletes by; absent = items do not expire. */
  ttlAttribute?: string;
  indexes?: ReadonlyArray<IndexSpec>;
}

export interface IndexSpec {
  name: string;
  partitionKey: string;
  sortKey?: string;
  sortKeyType?: "S" | "N";
  /**
   * Non-key attributes copied into the index (`INCLUDE`); absent = `ALL`. A narrow projection keeps
   * the index cheap: an update that touches none of these attributes writes nothing to it
   * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes).
   */
  include?: readonly string[];
  /** Keys only (the tenants' key-hash index: a lookup needs the tenant's key, nothing else). */
  keysOnly?: boolean;
}

/**
 * How many partitions the two "recent" indexes spread one day's (or one tenant's) requests over.
 * One index partition takes about 1,000 writes per second and a request writes its index entries
 * up to three times (created, picked up, finished): eight shards leave room for ~2,500 requests a
 * second before an index could throttle the table's writes
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-sharding.html).
 * A "newest first" read queries the eight and merges them.
 */
export const RECENT_SHARDS = 8;

/** What the dashboard's request list shows, copied into the two "recent" indexes. */
const RECENT_ATTRIBUTES = ["id", "status", "model", "completed_at", "source", "expires_at"] as const;

/** Index names are part of the contract between the stores and `bootstrap`. */
export const INDEXES = {
  /** requests: non-terminal records by deadline (sparse: `open` is removed on completion). */
  openByDeadline: "open-by-deadline",
  /** requests: a conversation's requests in arrival order (`conversation_key` = `<tenant>#<conversation id>`). */
  byConversation: "by-conversation",
  /**
   * requests: newest first across tenants. Partition `recent_bucket` = `<UTC day>#<shard>`
   * (`RECENT_SHARDS` per day), sort `created_at`. Both "recent" partition keys are written by the
   * same PutItem that creates the record.
   */
  recentByDay: "recent-by-day",
  /** requests: one tenant's requests, newest first (partition `tenant_bucket` = `<tenant>#<shard>`, sort `created_at`). */
  byTenant: "by-tenant",
  /** files, batches: one tenant's items, newest first (partition `tenant`, sort `pk`: ids are time-ordered). */
  byOwner: "by-owner",
  /** tenants: look a tenant up by the SHA-256 of its API key. */
  byKeyHash: "by-key-hash",
} as const;

export const TABLE_SPECS: Readonly<Record<TableKind, TableSpec>> = {
  requests: {
    kind: "requests",
    partitionKey: "pk",
    ttlAttribute: "expires_at",
    indexes: [
      { name: INDEXES.openByDeadline, partitionKey: "open", sortKey: "deadline_at", sortKeyType: "N" },
      { name: INDEXES.byConversation, partitionKey: "conversation_key", sortKey: "pk", sortKeyType: "S" },
      {
        name: INDEXES.recentByDay,
        partitionKey: "recent_bucket",
        sortKey: "created_at",
        include: [...RECENT_ATTRIBUTES, "tenant"],
      },
      {
        name: INDEXES.byTenant,
        partitionKey: "tenant_bucket",
        sortKey: "created_at",
        include: [...RECENT_ATTRIBUTES, "tenant"],
      },
    ],
  },
  tenants: {
    kind: "tenants",
    partitionKey: "pk",
    // Keys only: an API key lookup needs the tenant's name, never its secrets (they stay on the item).
    indexes: [{ name: INDEXES.byKeyHash, partitionKey: "key_hash", keysOnly: true }],
  },
  usage: { kind: "usage", partitionKey: "pk", ttlAttribute: "expires_at" },
  cache: { kind: "cache", partitionKey: "pk", ttlAttribute: "expires_at" },
  conversations: { kind: "conversations", partitionKey: "pk", sortKey: "sk", ttlAttribute: "expires_at" },
  // Powertools idempotency's default layout (`id`, `expiration`), so its DynamoDB adapter fits as is.
  idempotency: { kind: "idempotency", partitionKey: "id", ttlAttribute: "expiration" },
  // Uploaded files' metadata (bodies in the files bucket) and batches (POST /v1/batches).
  files: {
    kind: "files",
    partitionKey: "pk",
    ttlAttribute: "retain_until",
    indexes: [{ name: INDEXES.byOwner, partitionKey: "tenant", sortKey: "pk", sortKeyType: "S" }],
  },
  batches: {
    kind: "batches",
    partitionKey: "pk",
    ttlAttribute: "retain_until",
    indexes: [{ name: INDEXES.byOwner, partitionKey: "tenant", sortKey: "pk", sortKeyType: "S" }],
  },
};

/** One GSI's definition as CreateTable and UpdateTable take it. */
export function indexInput(index: IndexSpec): GlobalSecondaryIndex {
  return {
    IndexName: index.name,
    KeySchema: [
      { AttributeName: index.partitionKey, KeyType: "HASH" },
      ...(index.sortKey ? [{ AttributeName: index.sortKey, KeyType: "RANGE" as const }] : []),
    ],
    Projection: index.keysOnly
      ? { ProjectionType: "KEYS_ONLY" }
      : index.include
        ? { ProjectionType: "INCLUDE", NonKeyAttributes: [...index.include] }
        : { ProjectionType: "ALL" },
  };
}

/** The attribute definitions a table's keys and the keys of `indexes` need. */
export function attributeDefinitions(spec: TableSpec, indexes: readonly IndexSpec[] = spec.indexes ?? []) {
  const attributes = new Map<string, "S" | "N">([[spec.partitionKey, "S"]]);
  if (spec.sortKey) attributes.set(spec.sortKey, "S");
  for (const index of indexes) {
    attributes.set(index.partitionKey, "S");
    if (index.sortKey) attributes.set(index.sortKey, index.sortKeyType ?? "S");
  }
  return [...attributes].map(
    ([AttributeName, AttributeType]): AttributeDefinition => ({
      AttributeName,
      AttributeType,
    }),
  );
}

/** The CreateTable input for one table (on-demand billing; GSIs project ALL unless they name attributes). */
export function createTableInput(prefix: string, spec: TableSpec) {
  const keySchema: KeySchemaElement[] = [{ AttributeName: spec.partitionKey, KeyType: "HASH" }];
  if (spec.sortKey) keySchema.push({ AttributeName: spec.sortKey, KeyType: "RANGE" });
  const indexes = (spec.indexes ?? []).map(indexInput);
  const definitions = attributeDefinitions(spec);
  return {
    TableName: tableName(prefix, spec.kind),
    AttributeDefinitions: definitions,
    KeySchema: keySchema,
    BillingMode: "PAY_PER_REQUEST" as const,
    GlobalSecondaryIndexes: indexes.length ? indexes : undefined,
  };
}

/** Standard queue settings. Visibility covers one batch of model calls; DLQs keep messages 14 days. */
export const QUEUE_DEFAULTS = {
  maxReceiveCount: 5,
  visibilityTimeoutSeconds: 60,
  retentionSeconds: 4 * 24 * 3600,
  dlqRetentionSeconds: 14 * 24 * 3600,
} as const;
