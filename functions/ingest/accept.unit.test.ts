import type { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import type { AcceptedResponse } from "../../events/index.ts";
import { HttpError } from "../shared/errors.ts";
import { createLogger } from "../shared/logger.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { STREAM_ATTRIBUTE } from "../shared/sqs-records.ts";
import { IdempotencyConflictError, type IdempotencyStore } from "../shared/stores/idempotency.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import type { Tenant } from "../shared/stores/tenants.ts";
import type { ReserveOutcome, UsageStore } from "../shared/stores/usage.ts";
import { Acceptor, type Submission } from "./accept.ts";
import { parseSubmitBody } from "./ingest.ts";

/** The write path with in-memory stores and queues: what each decision leaves behind. */
function fakes(
  options: { reserve?: ReserveOutcome; sendFails?: boolean; idempotency?: "completed" | "reused" } = {},
) {
  const calls = {
    reserved: [] as number[],
    released: [] as number[],
    records: [] as string[],
    deleted: [] as string[],
    sent: [] as Array<{ queue: string; type: string }>,
    /** Each sent message's deepqueue-stream attribute, when it has one. */
    streamed: [] as string[],
    idempotency: [] as string[],
  };
  const sqs = {
    send: async (command: SendMessageBatchCommand) => {
      if (options.sendFails) throw Object.assign(new Error("queue down"), { name: "QueueDoesNotExist" });
      for (const entry of command.input.Entries ?? []) {
        calls.sent.push({ queue: command.input.QueueUrl!, type: JSON.parse(entry.MessageBody!).type });
        const stream = entry.MessageAttributes?.[STREAM_ATTRIBUTE]?.StringValue;
        if (stream) calls.streamed.push(stream);
      }
      return { Successful: [], Failed: [] };
    },
  } as unknown as SQSClient;
  const usage = {
    reserveMany: async (_tenant: string, tokens: readonly number[]) => {
      calls.reserved.push(...tokens);
      return tokens.map(() => options.reserve ?? { admitted: true, day: "2026-11-28" });
    },
    release: async (_tenant: string, tokens: number) => void calls.released.push(tokens),
  } as unknown as UsageStore;
  const requests = {
    createMany: async (entries: Array<{ request: { id: string } }>) =>
      entries.map((e) => {
        calls.records.push(e.request.id);
        return { id: e.request.id } as StoredRequest;
      }),
    deleteQueued: async (id: string) => {
      calls.deleted.push(id);
      return true;
    },
  } as unknown as RequestStore;
  const first: AcceptedResponse = { id: "req_first", status: "queued", status_url: "/v1/requests/req_first" };
  const idempotency = {
    begin: async (_t: string, key: string) => {
      calls.idempotency.push(`begin ${key}`);
      if (options.idempotency === "reused") throw new IdempotencyConflictError("reused");
      return options.idempotency === "completed"
        ? { state: "completed", response: first }
        : { state: "begun" };
    },
    abandon: async (_t: string, key: string) => void calls.idempotency.push(`abandon ${key}`),
    complete: async (_t: string, key: string) => void calls.idempotency.push(`complete ${key}`),
  } as unknown as IdempotencyStore<AcceptedResponse>;
  const acceptor = new Acceptor({
    sqs,
    queueUrls: { get: async (name: string) => `url/${name}` } as unknown as QueueUrls,
    requests,
    usage,
    idempotency,
    logger: createLogger({ level: "silent" }),
    prefix: "t",
    defaultModel: "deepseek-chat",
  });
  return { acceptor, calls };
}

const tenant = {
  tenant: "acme",
  daily_requests: 10,
  daily_tokens: 1000,
  cache_opt_in: false,
} as Tenant;

function submission(body: Record<string, unknown>, headers: Record<string, string> = {}): Submission {
  const raw = JSON.stringify(body);
  return { tenant, body: parseSubmitBody(raw), raw, headers, tokens: 7, span: undefined };
}

async function refusal(work: Promise<unknown>): Promise<HttpError> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HttpError);
  return error as HttpError;
}

describe("Acceptor: quota and write-path decisions", () => {
  it("reserves prompt + max_tokens, writes the record and sends to the batcher when the cache has no part", async () => {
    const { acceptor, calls } = fakes();
    const { status, response } = await acceptor.accept(
      submission({ prompt: "hi", max_tokens: 16, temperature: 0.7 }),
    );
    expect(status).toBe(202);
    expect(calls.reserved).toEqual([7 + 16]);
    expect(calls.records).toEqual([response.id]);
    expect(calls.sent).toEqual([{ queue: "url/t-inference", type: "deepqueue.inference.requested" }]);
    expect(calls.released).toEqual([]);
  });

  it("marks a request whose caller waits for a stream, so the batcher takes it without a batching window", async () => {
    const { acceptor, calls } = fakes();
    const reply = { queue_url: "https://sqs.local/reply", stream: true };
    await acceptor.accept({ ...submission({ prompt: "hi", max_tokens: 16, temperature: 0.7 }), reply });
    await acceptor.accept({
      ...submission({ prompt: "hi", max_tokens: 16, temperature: 0.7 }),
      reply: { ...reply, stream: false },
    });
    await acceptor.accept(submission({ prompt: "hi", max_tokens: 16, temperature: 0.7 }));
    expect(calls.sent).toHaveLength(3);
    expect(calls.streamed).toEqual(["true"]);
  });

  it("sends a cacheable request (temperature 0) to the cache stage", async () => {
    const { acceptor, calls } = fakes();
    await acceptor.accept(submission({ prompt: "hi", max_tokens: 16, temperature: 0 }));
    expect(calls.sent).toEqual([{ queue: "url/t-requests", type: "deepqueue.request.accepted" }]);
  });

  it("refuses with 429 quota_exceeded naming the quota, and writes nothing", async () => {
    const retryAfterSeconds = 3600;
    const requests = fakes({
      reserve: { admitted: false, kind: "requests", usage: { requests: 10, tokens: 0 }, retryAfterSeconds },
    });
    const error = await refusal(requests.acceptor.accept(submission({ prompt: "hi", max_tokens: 16 })));
    expect(error).toMatchObject({ status: 429, code: "quota_exceeded", headers: { "retry-after": "3600" } });
    expect(error.message).toMatch(/daily request quota of 10/);
    expect(requests.calls.records).toEqual([]);
    expect(requests.calls.sent).toEqual([]);

    const tokens = fakes({
      reserve: { admitted: false, kind: "tokens", usage: { requests: 1, tokens: 990 }, retryAfterSeconds },
    });
    const tokenError = await refusal(tokens.acceptor.accept(submission({ prompt: "hi", max_tokens: 16 })));
    expect(tokenError.message).toMatch(
      /daily token quota of 1000 would be exceeded \(this request counts 23/,
    );
  });

  it("gives the quota back and takes the record back when the message cannot be sent (503)", async () => {
    const { acceptor, calls } = fakes({ sendFails: true });
    const error = await refusal(
      acceptor.accept(submission({ prompt: "hi", max_tokens: 16 }, { "idempotency-key": "k1" })),
    );
    expect(error).toMatchObject({ status: 503, code: "unavailable" });
    expect(calls.deleted).toEqual(calls.records);
    expect(calls.released).toEqual([23]);
    expect(calls.idempotency).toEqual(["begin k1", "abandon k1"]);
  });

  it("replays a completed Idempotency-Key with 200 and the first answer, reserving nothing", async () => {
    const { acceptor, calls } = fakes({ idempotency: "completed" });
    const replay = await acceptor.accept(submission({ prompt: "hi" }, { "idempotency-key": "k1" }));
    expect(replay).toEqual({ status: 200, response: expect.objectContaining({ id: "req_first" }) });
    expect(calls.reserved).toEqual([]);
  });

  it("refuses a key reused with another body (422) and a key of the wrong length (400)", async () => {
    const reused = fakes({ idempotency: "reused" });
    const error = await refusal(
      reused.acceptor.accept(submission({ prompt: "hi" }, { "idempotency-key": "k1" })),
    );
    expect(error.code).toBe("idempotency_key_reused");
    const { acceptor, calls } = fakes();
    const tooLong = await refusal(
      acceptor.accept(submission({ prompt: "hi" }, { "idempotency-key": "x".repeat(300) })),
    );
    expect(tooLong).toMatchObject({ status: 400, code: "invalid_request" });
    expect(calls.idempotency).toEqual([]);
  });
});
