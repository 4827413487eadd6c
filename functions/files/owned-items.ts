import { type DynamoDBDocumentClient, GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { isExpired } from "../shared/dynamo.ts";
import { INDEXES } from "../shared/resources.ts";

/** A page of a tenant's items, newest first, as OpenAI's cursor lists (`after` = the last id seen). */
export interface Page<T> {
  data: T[];
  has_more: boolean;
}

export interface ListQuery {
  /** Only items older than this id (ids are time-ordered). */
  after?: string;
  /** @default 20 */
  limit?: number;
  /** Newest first unless "asc". */
  order?: "asc" | "desc";
}

/** Items read per Query page while a filter drops some. */
const QUERY_PAGE = 100;

/**
 * Reads items owned by a tenant from a table keyed by `pk` with the `by-owner` index
 * (`tenant`, `pk`): files and batches. Another tenant's item reads as absent, so a caller
 * answers 404 for it exactly as for an unknown id.
 *
 * @example const items = new OwnedItems(ddb, "deepqueue-files"); await items.get("acme", "file-0193…");
 */
export class OwnedItems {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    readonly table: string,
  ) {}

  /** The item when it exists, has not expired and belongs to `tenant`. */
  async get(tenant: string, id: string): Promise<Record<string, unknown> | undefined> {
    if (!id) return undefined;
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.table, Key: { pk: id }, ConsistentRead: true }),
    );
    const item = out.Item;
    if (!item || item.tenant !== tenant || isExpired(item.retain_until)) return undefined;
    return item;
  }

  /** One page of the tenant's items; `keep` filters (the page is still `limit` long when enough pass). */
  async list(
    tenant: string,
    query: ListQuery,
    keep: (item: Record<string, unknown>) => boolean = () => true,
  ): Promise<Page<Record<string, unknown>>> {
    const limit = query.limit ?? 20;
    const ascending = query.order === "asc";
    const data: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: INDEXES.byOwner,
          KeyConditionExpression: query.after
            ? `tenant = :t AND pk ${ascending ? ">" : "<"} :after`
            : "tenant = :t",
          ExpressionAttributeValues: { ":t": tenant, ...(query.after ? { ":after": query.after } : {}) },
          ScanIndexForward: ascending,
          Limit: QUERY_PAGE,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of out.Items ?? []) {
        if (isExpired(item.retain_until) || !keep(item)) continue;
        if (data.length === limit) return { data, has_more: true };
        data.push(item);
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return { data, has_more: false };
  }
}
