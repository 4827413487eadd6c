import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { epochSeconds, isConditionFailure, isExpired } from "../dynamo.ts";
import { tableName } from "../names.ts";

/** Usage items outlive their UTC day by this long (for `keys list`-style reports), then expire. */
export const USAGE_RETENTION_SECONDS = 8 * 24 * 3600;

/** Which daily quota a request would exceed. */
export const QUOTA_KINDS = { requests: "requests", tokens: "tokens" } as const;
export type QuotaKind = (typeof QUOTA_KINDS)[keyof typeof QUOTA_KINDS];

export interface QuotaLimits {
  /** Requests per UTC day; null = unlimited. */
  daily_requests: number | null;
  /** Tokens per UTC day; null = unlimited. */
  daily_tokens: number | null;
}

export interface DailyUsage {
  requests: number;
  tokens: number;
}

export type ReserveOutcome =
  | { admitted: true; day: string }
  | { admitted: false; kind: QuotaKind; usage: DailyUsage; retryAfterSeconds: number };

/** The UTC day a usage counter belongs to. @example utcDay(new Date("2026-11-26T23:59:59Z")) // "2026-11-26" */
export function utcDay(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/** Seconds until the next UTC midnight, when daily quotas reset (at least 1). */
export function secondsToUtcDayEnd(now: Date = new Date()): number {
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  return Math.max(1, Math.ceil((next - now.getTime()) / 1000));
}

/** @example usageKey("acme", "2026-11-26") // "acme#2026-11-26" */
export function usageKey(tenant: string, day: string): string {
  return `${tenant}#${day}`;
}

/**
 * Daily per-tenant counters. `reserve` is one conditional UpdateItem (ADD with
 * the limits in the condition), so any number of concurrent ingest replicas
 * admit exactly the quota: DynamoDB applies conditional writes to one item
 * one at a time (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate).
 */
export interface UsageStore {
  /** Counts one request and `tokens` against today's limits, or refuses without counting anything. */
  reserve(tenant: string, tokens: number, limits: QuotaLimits, now?: Date): Promise<ReserveOutcome>;
  /** Gives back a reservation (the request was not accepted after all). */
  release(tenant: string, tokens: number, day: string): Promise<void>;
  /**
   * Adds `tokens` to today's count without a limit check: work already under way
   * (a conversation turn's history) that later requests must pay for.
   */
  charge(tenant: string, tokens: number, now?: Date): Promise<void>;
  get(tenant: string, day?: string): Promise<DailyUsage>;
}

/** @example const usage = new DynamoUsageStore(ddb, "deepqueue"); */
export class DynamoUsageStore implements UsageStore {
  readonly table: string;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
  ) {
    this.table = tableName(prefix, "usage");
  }

  async reserve(
    tenant: string,
    tokens: number,
    limits: QuotaLimits,
    now: Date = new Date(),
  ): Promise<ReserveOutcome> {
    const day = utcDay(now);
    const conditions: string[] = [];
    const values: Record<string, unknown> = {
      ":one": 1,
      ":tokens": tokens,
      ":expires": epochSeconds(now) + secondsToUtcDayEnd(now) + USAGE_RETENTION_SECONDS,
    };
    if (limits.daily_requests !== null) {
      conditions.push("(attribute_not_exists(requests) OR requests < :maxRequests)");
      values[":maxRequests"] = limits.daily_requests;
    }
    if (limits.daily_tokens !== null) {
      // tokens + this request's tokens <= limit, written without arithmetic (conditions have none).
      conditions.push("(attribute_not_exists(tokens) OR tokens <= :tokenRoom)");
      values[":tokenRoom"] = limits.daily_tokens - tokens;
    }
    const refusedUpFront =
      (limits.daily_requests !== null && limits.daily_requests < 1) ||
      (limits.daily_tokens !== null && tokens > limits.daily_tokens);
    if (!refusedUpFront) {
      try {
        await this.ddb.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { pk: usageKey(tenant, day) },
            UpdateExpression: "ADD requests :one, tokens :tokens SET expires_at = :expires",
            ...(conditions.length ? { ConditionExpression: conditions.join(" AND ") } : {}),
            ExpressionAttributeValues: values,
          }),
        );
        return { admitted: true, day };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
    }
    const usage = await this.get(tenant, day);
    const kind: QuotaKind =
      limits.daily_requests !== null && usage.requests >= limits.daily_requests
        ? QUOTA_KINDS.requests
        : QUOTA_KINDS.tokens;
    return { admitted: false, kind, usage, retryAfterSeconds: secondsToUtcDayEnd(now) };
  }

  async release(tenant: string, tokens: number, day: string): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: usageKey(tenant, day) },
        UpdateExpression: "ADD requests :minusOne, tokens :minusTokens",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":minusOne": -1, ":minusTokens": -tokens },
      }),
    );
  }

  async charge(tenant: string, tokens: number, now: Date = new Date()): Promise<void> {
    if (tokens <= 0) return;
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: usageKey(tenant, utcDay(now)) },
        UpdateExpression: "ADD tokens :tokens SET expires_at = :expires",
        ExpressionAttributeValues: {
          ":tokens": tokens,
          ":expires": epochSeconds(now) + secondsToUtcDayEnd(now) + USAGE_RETENTION_SECONDS,
        },
      }),
    );
  }

  async get(tenant: string, day: string = utcDay()): Promise<DailyUsage> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.table, Key: { pk: usageKey(tenant, day) }, ConsistentRead: true }),
    );
    if (!out.Item || isExpired(out.Item.expires_at)) return { requests: 0, tokens: 0 };
    return { requests: Number(out.Item.requests ?? 0), tokens: Number(out.Item.tokens ?? 0) };
  }
}
