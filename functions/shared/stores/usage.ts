import { type DynamoDBDocumentClient, GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { conditionalWrite, epochSeconds, isExpired } from "../dynamo.ts";
import { tableName } from "../names.ts";

/**
 * How often an unlimited tenant's counts, added up in memory, are written: nothing is enforced for
 * such a tenant, so one ADD per tenant and second replaces one conditional write per request (a
 * replica that crashes loses at most this much of its count; SIGTERM writes what it holds).
 */
const UNLIMITED_FLUSH_MS = 1000;

/** Usage items outlive their UTC day by this long (for `keys list`-style reports), then expire. */
const USAGE_RETENTION_SECONDS = 8 * 24 * 3600;

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
function usageKey(tenant: string, day: string): string {
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
  /**
   * Counts many requests of one tenant under the same limits: one conditional update for all of
   * them when they fit together, else one by one (exact either way). One outcome per request.
   */
  reserveMany(
    tenant: string,
    tokens: readonly number[],
    limits: QuotaLimits,
    now?: Date,
  ): Promise<ReserveOutcome[]>;
  /** Gives back a reservation (the request was not accepted after all). */
  release(tenant: string, tokens: number, day: string): Promise<void>;
  /**
   * Adds `tokens` to today's count without a limit check: work already under way
   * (a conversation turn's history) that later requests must pay for.
   */
  charge(tenant: string, tokens: number, now?: Date): Promise<void>;
  get(tenant: string, day?: string): Promise<DailyUsage>;
  /** Writes the counts held in memory (unlimited tenants); call before the process exits. */
  flush?(): Promise<void>;
}

const unlimited = (limits: QuotaLimits) => limits.daily_requests === null && limits.daily_tokens === null;

/** @example const usage = new DynamoUsageStore(ddb, "deepqueue"); */
export class DynamoUsageStore implements UsageStore {
  readonly table: string;
  /** Unlimited tenants' counts not yet written, by usage key. */
  readonly #pending = new Map<string, DailyUsage & { expires: number }>();
  #timer: NodeJS.Timeout | undefined;
  readonly #flushMs: number;

  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
    options: { unlimitedFlushMs?: number } = {},
  ) {
    this.table = tableName(prefix, "usage");
    this.#flushMs = options.unlimitedFlushMs ?? UNLIMITED_FLUSH_MS;
  }

  /** Counts for a tenant with no limits: in memory, written within #flushMs. */
  #tally(tenant: string, tokens: readonly number[], now: Date): ReserveOutcome[] {
    const day = utcDay(now);
    const key = usageKey(tenant, day);
    const entry = this.#pending.get(key) ?? {
      requests: 0,
      tokens: 0,
      expires: epochSeconds(now) + secondsToUtcDayEnd(now) + USAGE_RETENTION_SECONDS,
    };
    entry.requests += tokens.length;
    for (const t of tokens) entry.tokens += t;
    this.#pending.set(key, entry);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      void this.flush().catch(() => undefined);
    }, this.#flushMs).unref();
    return tokens.map(() => ({ admitted: true, day }));
  }

  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const entries = [...this.#pending];
    this.#pending.clear();
    await Promise.all(
      entries.map(async ([pk, counts]) => {
        try {
          await this.ddb.send(
            new UpdateCommand({
              TableName: this.table,
              Key: { pk },
              UpdateExpression: "ADD requests :requests, tokens :tokens SET expires_at = :expires",
              ExpressionAttributeValues: {
                ":requests": counts.requests,
                ":tokens": counts.tokens,
                ":expires": counts.expires,
              },
            }),
          );
        } catch (error) {
          // Not lost: added back, written with the next flush.
          const back = this.#pending.get(pk);
          if (back) {
            back.requests += counts.requests;
            back.tokens += counts.tokens;
          } else this.#pending.set(pk, counts);
          throw error;
        }
      }),
    );
  }

  async reserve(
    tenant: string,
    tokens: number,
    limits: QuotaLimits,
    now: Date = new Date(),
  ): Promise<ReserveOutcome> {
    if (unlimited(limits)) return this.#tally(tenant, [tokens], now)[0]!;
    const day = utcDay(now);
    if (await this.#addWithin(tenant, day, 1, tokens, limits, now)) return { admitted: true, day };
    const usage = await this.get(tenant, day);
    const kind: QuotaKind =
      limits.daily_requests !== null && usage.requests >= limits.daily_requests
        ? QUOTA_KINDS.requests
        : QUOTA_KINDS.tokens;
    return { admitted: false, kind, usage, retryAfterSeconds: secondsToUtcDayEnd(now) };
  }

  async reserveMany(
    tenant: string,
    tokens: readonly number[],
    limits: QuotaLimits,
    now: Date = new Date(),
  ): Promise<ReserveOutcome[]> {
    if (unlimited(limits)) return this.#tally(tenant, tokens, now);
    if (tokens.length === 1) return [await this.reserve(tenant, tokens[0]!, limits, now)];
    const day = utcDay(now);
    const total = tokens.reduce((a, b) => a + b, 0);
    if (await this.#addWithin(tenant, day, tokens.length, total, limits, now)) {
      return tokens.map(() => ({ admitted: true, day }));
    }
    // Near the limit: one at a time, in arrival order, so exactly the quota is admitted.
    const outcomes: ReserveOutcome[] = [];
    for (const t of tokens) outcomes.push(await this.reserve(tenant, t, limits, now));
    return outcomes;
  }

  /**
   * Adds `requests` and `tokens` to the day's counters in one conditional UpdateItem when they fit
   * under `limits` (the room left is in the condition: conditions have no arithmetic); false when
   * they do not, and nothing was counted.
   */
  async #addWithin(
    tenant: string,
    day: string,
    requests: number,
    tokens: number,
    limits: QuotaLimits,
    now: Date,
  ): Promise<boolean> {
    const fits =
      (limits.daily_requests === null || limits.daily_requests >= requests) &&
      (limits.daily_tokens === null || limits.daily_tokens >= tokens);
    if (!fits) return false;
    const conditions: string[] = [];
    const values: Record<string, unknown> = {
      ":requests": requests,
      ":tokens": tokens,
      ":expires": epochSeconds(now) + secondsToUtcDayEnd(now) + USAGE_RETENTION_SECONDS,
    };
    if (limits.daily_requests !== null) {
      conditions.push("(attribute_not_exists(requests) OR requests <= :requestRoom)");
      values[":requestRoom"] = limits.daily_requests - requests;
    }
    if (limits.daily_tokens !== null) {
      conditions.push("(attribute_not_exists(tokens) OR tokens <= :tokenRoom)");
      values[":tokenRoom"] = limits.daily_tokens - tokens;
    }
    return conditionalWrite(() =>
      this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: usageKey(tenant, day) },
          UpdateExpression: "ADD requests :requests, tokens :tokens SET expires_at = :expires",
          // The SDK leaves an undefined field out of the request.
          ConditionExpression: conditions.length ? conditions.join(" AND ") : undefined,
          ExpressionAttributeValues: values,
        }),
      ),
    );
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
    // This replica's unwritten counts are part of the answer.
    const pending = this.#pending.get(usageKey(tenant, day));
    const stored =
      !out.Item || isExpired(out.Item.expires_at)
        ? { requests: 0, tokens: 0 }
        : { requests: Number(out.Item.requests ?? 0), tokens: Number(out.Item.tokens ?? 0) };
    return {
      requests: stored.requests + (pending?.requests ?? 0),
      tokens: stored.tokens + (pending?.tokens ?? 0),
    };
  }
}
