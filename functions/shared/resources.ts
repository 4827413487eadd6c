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
  indexes?: ReadonlyArray<{
    name: string;
    partitionKey: string;
    sortKey?: string;
    sortKeyType?: "S" | "N";
    /** What the index copies from each item. @default "ALL" */
    projection?: "ALL" | "KEYS_ONLY";
  }>;
}

/** Index names are part of the contract between the stores and `bootstrap`. */
export const INDEXES = {
  /** requests: non-terminal records by deadline (sparse: `open` is removed on completion). */
  openByDeadline: "open-by-deadline",
  /** requests: a conversation's requests in arrival order (`conversation_key` = `<tenant>#<conversation id>`). */
  byConversation: "by-conversation",
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
    ],
  },
  tenants: {
    kind: "tenants",
    partitionKey: "pk",
    // Keys only: an API key lookup needs the tenant's name, never its secrets (they stay on the item).
    indexes: [{ name: INDEXES.byKeyHash, partitionKey: "key_hash", projection: "KEYS_ONLY" }],
  },
  usage: { kind: "usage", partitionKey: "pk", ttlAttribute: "expires_at" },
  cache: { kind: "cache", partitionKey: "pk", ttlAttribute: "expires_at" },
  conversations: { kind: "conversations", partitionKey: "pk", sortKey: "sk", ttlAttribute: "expires_at" },
  // Powertools idempotency's default layout (`id`, `expiration`), so its DynamoDB adapter fits as is.
  idempotency: { kind: "idempotency", partitionKey: "id", ttlAttribute: "expiration" },
};

/** The CreateTable input for one table (on-demand billing; GSIs project ALL unless the spec says otherwise). */
export function createTableInput(prefix: string, spec: TableSpec) {
  const attributes = new Map<string, "S" | "N">([[spec.partitionKey, "S"]]);
  if (spec.sortKey) attributes.set(spec.sortKey, "S");
  const keySchema: KeySchemaElement[] = [{ AttributeName: spec.partitionKey, KeyType: "HASH" }];
  if (spec.sortKey) keySchema.push({ AttributeName: spec.sortKey, KeyType: "RANGE" });
  const indexes: GlobalSecondaryIndex[] = (spec.indexes ?? []).map((index) => {
    attributes.set(index.partitionKey, "S");
    if (index.sortKey) attributes.set(index.sortKey, index.sortKeyType ?? "S");
    return {
      IndexName: index.name,
      KeySchema: [
        { AttributeName: index.partitionKey, KeyType: "HASH" },
        ...(index.sortKey ? [{ AttributeName: index.sortKey, KeyType: "RANGE" as const }] : []),
      ],
      Projection: { ProjectionType: index.projection ?? "ALL" },
    };
  });
  const definitions: AttributeDefinition[] = [...attributes].map(([AttributeName, AttributeType]) => ({
    AttributeName,
    AttributeType,
  }));
  return {
    TableName: tableName(prefix, spec.kind),
    AttributeDefinitions: definitions,
    KeySchema: keySchema,
    BillingMode: "PAY_PER_REQUEST" as const,
    ...(indexes.length ? { GlobalSecondaryIndexes: indexes } : {}),
  };
}

/** Standard queue settings. Visibility covers one batch of model calls; DLQs keep messages 14 days. */
export const QUEUE_DEFAULTS = {
  maxReceiveCount: 5,
  visibilityTimeoutSeconds: 60,
  retentionSeconds: 4 * 24 * 3600,
  dlqRetentionSeconds: 14 * 24 * 3600,
} as const;
