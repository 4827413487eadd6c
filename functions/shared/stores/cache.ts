import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { AcceptedRequest, ChatMessage, Usage } from "../../../events/index.ts";
import { epochSeconds, isConditionFailure, isExpired, UnprocessedItemsError } from "../dynamo.ts";
import { tableName } from "../names.ts";

/** The source design's Redis TTL: 5 minutes. */
export const DEFAULT_CACHE_TTL_SECONDS = 300;

/**
 * True when a request may use the response cache: it did not opt out, and its answer is
 * deterministic (temperature 0) or its tenant opted in to caching sampled answers.
 */
export function cacheAllowed(
  request: Pick<AcceptedRequest, "cache" | "temperature">,
  tenant: { cache_opt_in?: boolean | undefined } | undefined,
): boolean {
  return request.cache !== false && (request.temperature === 0 || tenant?.cache_opt_in === true);
}
/** How long the "last answer" (degradation level 1, any age) is kept. */
const LAST_ANSWER_RETENTION_SECONDS = 30 * 24 * 3600;

/** A stored answer. */
export interface CachedAnswer {
  text: string;
  finish_reason: string;
  usage: Usage;
  /** The request whose model call produced it. */
  request_id: string;
  created_at: string;
}

/** What identifies an answer: the normalized request after context assembly. */
export interface CacheKeyInput {
  tenant: string;
  model: string;
  /** A plain completions prompt, or the chat messages the model sees. */
  prompt?: string | undefined;
  messages?: ChatMessage[] | undefined;
  max_tokens: number;
  temperature: number;
  /** Other sampling parameters, when a request ever carries them. */
  params?: Record<string, unknown>;
}

function sha256(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex");
}

function normalizeMessages(messages: ChatMessage[]): Array<[string, string]> {
  // Role and content only, content trimmed and line endings unified: formatting noise must not split entries.
  return messages.map((m) => [m.role, m.content.replace(/\r\n/g, "\n").trim()]);
}

function promptPart(input: Pick<CacheKeyInput, "prompt" | "messages">) {
  return input.messages
    ? { messages: normalizeMessages(input.messages) }
    : { prompt: (input.prompt ?? "").replace(/\r\n/g, "\n").trim() };
}

/**
 * The cache key: SHA-256 of the canonical JSON of (tenant, model, prompt or
 * messages, max_tokens, temperature, other params). Namespaced per tenant, so
 * one tenant's prompts never answer (or reveal) another's.
 *
 * @example cacheKey({ tenant: "acme", model: "deepseek-chat", prompt: "Hi", max_tokens: 64, temperature: 0 })
 */
export function cacheKey(input: CacheKeyInput): string {
  const params = Object.fromEntries(
    Object.entries(input.params ?? {}).sort(([a], [b]) => a.localeCompare(b)),
  );
  return sha256([
    "v1",
    input.tenant,
    input.model,
    promptPart(input),
    input.max_tokens,
    Number(input.temperature.toFixed(4)),
    params,
  ]);
}

/**
 * The "same prompt" key of degradation level 1: tenant, model and prompt only,
 * whatever the sampling parameters were.
 */
export function lastAnswerKey(
  input: Pick<CacheKeyInput, "tenant" | "model" | "prompt" | "messages">,
): string {
  return sha256(["last-v1", input.tenant, input.model, promptPart(input)]);
}

export interface ClaimResult {
  /** True when this request now owns the in-flight marker: it makes the model call. */
  leader: boolean;
  /** The request that owns the marker. */
  holder: string;
  /** When the holder claimed it (epoch ms). */
  claimedAt: number;
}

/**
 * The response cache on `<prefix>-cache`: fresh answers (TTL), last answers
 * (any age, for degradation) and in-flight markers (request coalescing).
 */
export interface ResponseCache {
  /** A fresh answer (younger than its TTL), else undefined. */
  get(key: string): Promise<CachedAnswer | undefined>;
  /** The latest answer for the same prompt, however old. */
  getLast(lastKey: string): Promise<CachedAnswer | undefined>;
  /** Stores a fresh answer (under `key`, when given) and the last answer (under `lastKey`). */
  put(entry: {
    key?: string | undefined;
    lastKey: string;
    answer: CachedAnswer;
    ttlSeconds: number;
  }): Promise<void>;
  /**
   * Claims the in-flight marker of `key` for `requestId` (conditional put):
   * succeeds when there is none, it is older than `staleAfterSeconds` (its
   * leader died), or `requestId` already holds it.
   */
  claim(key: string, requestId: string, staleAfterSeconds: number): Promise<ClaimResult>;
  /** Removes the marker when `requestId` holds it. */
  release(key: string, requestId: string): Promise<void>;
}

interface PendingPut {
  item: Record<string, unknown>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** @example const cache = new DynamoResponseCache(ddb, "deepqueue"); */
export class DynamoResponseCache implements ResponseCache {
  readonly table: string;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
  ) {
    this.table = tableName(prefix, "cache");
  }

  async #read(pk: string): Promise<CachedAnswer | undefined> {
    const out = await this.ddb.send(new GetCommand({ TableName: this.table, Key: { pk } }));
    if (!out.Item || isExpired(out.Item.expires_at)) return undefined;
    return out.Item.answer as CachedAnswer;
  }

  get(key: string): Promise<CachedAnswer | undefined> {
    return this.#read(`ans#${key}`);
  }

  getLast(lastKey: string): Promise<CachedAnswer | undefined> {
    return this.#read(`last#${lastKey}`);
  }

  /**
   * Writes coalesce: the puts of one tick (the records of one SQS batch,
   * finished together) go out as BatchWriteItem calls of up to 25 items,
   * instead of one call each.
   */
  async put(entry: {
    key?: string | undefined;
    lastKey: string;
    answer: CachedAnswer;
    ttlSeconds: number;
  }): Promise<void> {
    const now = epochSeconds();
    const items = [
      { pk: `last#${entry.lastKey}`, answer: entry.answer, expires_at: now + LAST_ANSWER_RETENTION_SECONDS },
      ...(entry.key
        ? [{ pk: `ans#${entry.key}`, answer: entry.answer, expires_at: now + entry.ttlSeconds }]
        : []),
    ];
    await Promise.all(items.map((item) => this.#enqueue(item)));
  }

  #pending: PendingPut[] = [];
  #scheduled = false;

  #enqueue(item: Record<string, unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    // BatchWriteItem refuses two writes to one key in a call: the later one waits for the next call.
    while (this.#pending.length > 0) {
      const chunk: PendingPut[] = [];
      const keys = new Set<unknown>();
      const rest: PendingPut[] = [];
      for (const entry of this.#pending) {
        if (chunk.length < 25 && !keys.has(entry.item.pk)) {
          keys.add(entry.item.pk);
          chunk.push(entry);
        } else rest.push(entry);
      }
      this.#pending = rest;
      void this.#write(chunk);
    }
  }

  async #write(chunk: PendingPut[]): Promise<void> {
    try {
      // Whatever DynamoDB leaves unprocessed is written again, with a short back-off.
      let requests = chunk.map(({ item }) => ({ PutRequest: { Item: item } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        if (attempt > 5) throw new UnprocessedItemsError("cache write left items unprocessed");
        if (attempt > 0) await sleep(50 * attempt);
        const out = await this.ddb.send(new BatchWriteCommand({ RequestItems: { [this.table]: requests } }));
        requests = (out.UnprocessedItems?.[this.table] ?? []) as typeof requests;
      }
      for (const entry of chunk) entry.resolve();
    } catch (error) {
      for (const entry of chunk) entry.reject(error);
    }
  }

  async claim(key: string, requestId: string, staleAfterSeconds: number): Promise<ClaimResult> {
    const now = Date.now();
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: `inflight#${key}`,
            holder: requestId,
            claimed_at: now,
            expires_at: epochSeconds(now) + staleAfterSeconds,
          },
          ConditionExpression: "attribute_not_exists(pk) OR claimed_at < :stale OR holder = :me",
          ExpressionAttributeValues: { ":stale": now - staleAfterSeconds * 1000, ":me": requestId },
        }),
      );
      return { leader: true, holder: requestId, claimedAt: now };
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const out = await this.ddb.send(
        new GetCommand({ TableName: this.table, Key: { pk: `inflight#${key}` }, ConsistentRead: true }),
      );
      return {
        leader: false,
        holder: String(out.Item?.holder ?? ""),
        claimedAt: Number(out.Item?.claimed_at ?? now),
      };
    }
  }

  async release(key: string, requestId: string): Promise<void> {
    try {
      // Expire instead of delete: one conditional write, and a reader treats it as gone.
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `inflight#${key}` },
          UpdateExpression: "SET claimed_at = :zero, expires_at = :zero",
          ConditionExpression: "holder = :me",
          ExpressionAttributeValues: { ":me": requestId, ":zero": 0 },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }
}
