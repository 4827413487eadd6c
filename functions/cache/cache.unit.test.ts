import type { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { type AcceptedRequest, buildEvent, EVENT_TYPES } from "../../events/index.ts";
import { createLogger } from "../shared/logger.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { RetryLaterError } from "../shared/sqs-records.ts";
import type { ResponseCache } from "../shared/stores/cache.ts";
import type { ConversationStore, ConversationTurn } from "../shared/stores/conversations.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import type { Tenant } from "../shared/stores/tenants.ts";
import { CacheStage } from "./cache.ts";

const NOW = Date.now();

function accepted(fields: Partial<AcceptedRequest> = {}): AcceptedRequest {
  return {
    id: "req_02",
    tenant: "acme",
    model: "deepseek-chat",
    prompt: "What is a queue?",
    max_tokens: 64,
    temperature: 0,
    cache: true,
    prompt_tokens: 5,
    created_at: new Date(NOW).toISOString(),
    deadline_at: new Date(NOW + 900_000).toISOString(),
    ...fields,
  };
}

function record(body: unknown, receiveCount = 1): SQSRecord {
  return {
    messageId: "m-1",
    receiptHandle: "rh-1",
    body: typeof body === "string" ? body : JSON.stringify(body),
    attributes: { ApproximateReceiveCount: String(receiveCount) },
    messageAttributes: {},
  } as unknown as SQSRecord;
}

function message(request: AcceptedRequest, receiveCount = 1): SQSRecord {
  const event = buildEvent({
    id: "evt_1",
    type: EVENT_TYPES.requestAccepted,
    subject: request.id,
    data: request,
  });
  return record(event, receiveCount);
}

function storedOf(request: AcceptedRequest, fields: Partial<StoredRequest> = {}): StoredRequest {
  return {
    id: request.id,
    status: "queued",
    model: request.model,
    tenant: request.tenant,
    created_at: request.created_at,
    updated_at: request.created_at,
    request,
    deadline_at: NOW + 900_000,
    expires_at: 0,
    ...fields,
  } as StoredRequest;
}

const ANSWER = {
  text: "A queue holds messages.",
  finish_reason: "stop",
  usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
};

interface World {
  /** Records by id (earlier conversation turns, or the request itself on a redelivery). */
  stored?: StoredRequest[];
  /** The response cache's answer for any key. */
  hit?: boolean;
  /** Whether this request becomes the leader of its cache key. */
  leader?: boolean;
  turns?: ConversationTurn[];
  tenant?: Partial<Tenant>;
  maxConversationTurns?: number;
}

function parse(body: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** The cache function over in-memory queues and stores: which queue each message ended on. */
function stage(world: World = {}) {
  const sent: Array<{ queue: string; body?: Record<string, unknown>; delay?: number; visibility?: number }> =
    [];
  const writes: string[] = [];
  const sqs = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      const input = command.input as {
        QueueUrl: string;
        Entries?: Array<{ MessageBody: string }>;
        MessageBody?: string;
        DelaySeconds?: number;
        VisibilityTimeout?: number;
      };
      if (input.VisibilityTimeout !== undefined)
        sent.push({ queue: input.QueueUrl, visibility: input.VisibilityTimeout });
      for (const { MessageBody } of input.Entries ??
        (input.MessageBody ? [{ MessageBody: input.MessageBody }] : [])) {
        sent.push({ queue: input.QueueUrl, body: parse(MessageBody), delay: input.DelaySeconds });
      }
      return { Successful: [], Failed: [] };
    },
  } as unknown as SQSClient;
  const byId = new Map((world.stored ?? []).map((s) => [s.id, s]));
  const requests = {
    get: async (id: string) => byId.get(id),
    listConversation: async () => world.stored ?? [],
    complete: async (id: string, result: Record<string, unknown>) => {
      writes.push(`complete ${id} ${result.source}`);
      const request = accepted({ id });
      return { applied: true, record: storedOf(request, { status: "completed", result: result as never }) };
    },
    fail: async (id: string, error: { code: string }) => {
      writes.push(`fail ${id} ${error.code}`);
      return {
        applied: true,
        record: storedOf(accepted({ id }), { status: "failed", error: error as never }),
      };
    },
  } as unknown as RequestStore;
  const conversations = {
    history: async () => ({ turns: world.turns ?? [] }),
    appendTurn: async (_t: string, _c: string, turn: ConversationTurn) => {
      writes.push(`append ${turn.request_id}`);
      return true;
    },
  } as unknown as ConversationStore;
  const responses = {
    get: async () => (world.hit ? ANSWER : undefined),
    claim: async () => (world.leader === false ? { leader: false, holder: "req_01" } : { leader: true }),
  } as unknown as ResponseCache;
  const fn = new CacheStage({
    sqs,
    queueUrls: { get: async (name: string) => name } as unknown as QueueUrls,
    prefix: "t",
    requests,
    tenants: { get: async () => ({ tenant: "acme", cache_opt_in: false, ...world.tenant }) as Tenant },
    conversations,
    responses,
    config: { maxConversationTurns: world.maxConversationTurns },
    logger: createLogger({ level: "silent" }),
  });
  return { fn, sent, writes, queues: () => sent.map((m) => m.queue) };
}

describe("cache function routing (fake queues and stores)", () => {
  it("sends a request that may not use the cache to inference without a cache key", async () => {
    const { fn, sent } = stage({ hit: true });
    expect(await fn.handleRecord(message(accepted({ temperature: 0.7 })))).toBe("forwarded");
    expect(sent).toEqual([expect.objectContaining({ queue: "t-inference" })]);
    expect(sent[0]!.body?.data).not.toHaveProperty("cache_key");
  });

  it("uses the cache for temperature > 0 when the tenant opted in", async () => {
    const { fn } = stage({ hit: true, tenant: { cache_opt_in: true } });
    expect(await fn.handleRecord(message(accepted({ temperature: 0.7 })))).toBe("hit");
  });

  it("answers a hit from the cache: completed with source cache and handed on, no model call", async () => {
    const { fn, writes, queues } = stage({ hit: true });
    expect(await fn.handleRecord(message(accepted()))).toBe("hit");
    expect(writes).toEqual(["complete req_02 cache"]);
    expect(queues()).toEqual(["t-results-acme"]);
  });

  it("forwards the leader of a miss with its cache key, so the batcher stores the answer", async () => {
    const { fn, sent } = stage({ leader: true });
    expect(await fn.handleRecord(message(accepted()))).toBe("forwarded");
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      queue: "t-inference",
      body: { data: { cache_key: expect.any(String) } },
    });
  });

  it("sends a follower of an identical request back to wait: the message itself, later a fresh copy", async () => {
    const early = stage({ leader: false });
    await expect(early.fn.handleRecord(message(accepted()))).rejects.toBeInstanceOf(RetryLaterError);
    expect(early.sent).toEqual([{ queue: "t-requests", visibility: 1 }]);
    // Near maxReceiveCount: a delayed copy instead, and this message counts as handled.
    const late = stage({ leader: false, stored: [storedOf(accepted())] });
    expect(await late.fn.handleRecord(message(accepted(), 4))).toBe("waiting");
    expect(late.sent).toEqual([expect.objectContaining({ queue: "t-requests", delay: 1 })]);
  });

  it("holds a conversation turn until the earlier turn is finished", async () => {
    const earlier = storedOf(accepted({ id: "req_01", conversation_id: "c1" }), { status: "processing" });
    const { fn, sent } = stage({ stored: [earlier] });
    await expect(fn.handleRecord(message(accepted({ conversation_id: "c1" })))).rejects.toThrow(
      /waiting for req_01/,
    );
    expect(sent).toEqual([{ queue: "t-requests", visibility: 1 }]);
  });

  it("refuses a turn past the conversation's turn cap: failed and handed on, nothing to the model", async () => {
    const turns = [
      { request_id: "req_01", messages: [{ role: "user", content: "hi" }], answer: "hello", created_at: "" },
    ];
    const { fn, writes, queues } = stage({ turns: turns as ConversationTurn[], maxConversationTurns: 1 });
    expect(await fn.handleRecord(message(accepted({ conversation_id: "c1" })))).toBe("refused");
    expect(writes).toEqual(["fail req_02 invalid_request"]);
    expect(queues()).toEqual(["t-results-acme"]);
  });

  it("on a redelivery, hands on a finished record again and drops a message whose record is gone", async () => {
    const done = storedOf(accepted(), { status: "completed", result: { ...ANSWER, source: "model" } });
    const replay = stage({ stored: [done] });
    expect(await replay.fn.handleRecord(message(accepted(), 2))).toBe("replayed");
    expect(replay.queues()).toEqual(["t-results-acme"]);
    const gone = stage();
    expect(await gone.fn.handleRecord(message(accepted(), 2))).toBe("dropped");
    expect(gone.sent).toEqual([]);
  });

  it("sends a malformed message to the DLQ at once", async () => {
    const { fn, queues } = stage();
    expect(await fn.handleRecord(record("{not json"))).toBe("poison");
    expect(queues()).toEqual(["t-requests-dlq"]);
  });
});
