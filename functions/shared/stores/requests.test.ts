import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AcceptedRequest } from "../../../events/index.ts";
import { startTestStack, type TestStack } from "../../../test/helpers/emulators.ts";
import { newRequestId } from "../ids.ts";
import { resultEvent, resultEventId } from "../results.ts";
import { conversationKey, DynamoRequestStore, toPublicRecord } from "./requests.ts";

function accepted(overrides: Partial<AcceptedRequest> = {}): AcceptedRequest {
  const now = Date.now();
  return {
    id: newRequestId(),
    tenant: "acme",
    model: "deepseek-chat",
    prompt: "hello",
    max_tokens: 16,
    temperature: 0,
    cache: true,
    prompt_tokens: 1,
    created_at: new Date(now).toISOString(),
    deadline_at: new Date(now + 900_000).toISOString(),
    ...overrides,
  };
}

const answer = (text: string) => ({
  text,
  finish_reason: "stop",
  usage: { prompt_tokens: 1, completion_tokens: 2 },
  source: "model" as const,
});

describe("request records in DynamoDB", () => {
  let stack: TestStack;
  let store: DynamoRequestStore;
  beforeAll(async () => {
    stack = await startTestStack();
    store = new DynamoRequestStore(stack.ddb, stack.prefix);
  });
  afterAll(() => stack.stop());

  it("createMany writes every record in batches and answers one result per request, in order", async () => {
    const reqs = Array.from({ length: 30 }, () => accepted());
    const results = await store.createMany(
      reqs.map((request) => ({ request, options: { traceparent: "t" } })),
    );
    expect(results.map((r) => (r instanceof Error ? r.message : r.id))).toEqual(reqs.map((r) => r.id));
    for (const req of [reqs[0]!, reqs[29]!]) {
      expect(await store.get(req.id)).toMatchObject({ id: req.id, status: "queued", traceparent: "t" });
    }
  });

  it("a processing marker shows as `processing` only while the record is queued, and only when asked", async () => {
    const req = accepted();
    await store.create(req);
    expect((await store.get(req.id, { progress: true }))?.status).toBe("queued");
    await store.markProcessing([req.id]);
    expect((await store.get(req.id))?.status).toBe("queued");
    expect((await store.get(req.id, { progress: true }))?.status).toBe("processing");
    await store.complete(req.id, answer("done"));
    expect((await store.get(req.id, { progress: true }))?.status).toBe("completed");
  });

  it("creates once; a second create with the same id is refused", async () => {
    const req = accepted({ metadata: { k: "v" } });
    await store.create(req);
    await expect(store.create(req)).rejects.toThrow();
    expect(toPublicRecord((await store.get(req.id))!)).toEqual({
      id: req.id,
      status: "queued",
      model: "deepseek-chat",
      created_at: req.created_at,
      metadata: { k: "v" },
    });
  });

  it("the first terminal transition wins; later ones get the winner back", async () => {
    const req = accepted();
    await store.create(req);
    await store.markProcessing([req.id]);
    expect((await store.get(req.id, { progress: true }))?.status).toBe("processing");
    const first = await store.complete(req.id, answer("first"));
    expect(first.applied).toBe(true);
    const second = await store.complete(req.id, answer("second"));
    expect(second.applied).toBe(false);
    expect(second.record.result?.text).toBe("first");
    const failed = await store.fail(req.id, { code: "deadline_exceeded", message: "late" });
    expect(failed.applied).toBe(false);
    expect(failed.record.status).toBe("completed");
    // The result event is the same however often it is built.
    expect(resultEvent(second.record).id).toBe(resultEventId(req.id));
    expect(resultEvent(first.record)).toEqual(resultEvent(second.record));
  });

  it("deletes only records that are still queued (ingest rollback)", async () => {
    const queued = accepted();
    await store.create(queued);
    expect(await store.deleteQueued(queued.id)).toBe(true);
    expect(await store.get(queued.id)).toBeUndefined();
    const done = accepted();
    await store.create(done);
    await store.complete(done.id, answer("x"));
    expect(await store.deleteQueued(done.id)).toBe(false);
  });

  it("lists overdue open records only, and forgets them once terminal", async () => {
    const past = Date.now() - 1000;
    const overdue = accepted({ deadline_at: new Date(past).toISOString() });
    const onTime = accepted();
    await store.create(overdue);
    await store.create(onTime);
    const ids = (await store.listOverdue(Date.now())).map((r) => r.id);
    expect(ids).toContain(overdue.id);
    expect(ids).not.toContain(onTime.id);
    await store.fail(overdue.id, { code: "deadline_exceeded", message: "late" });
    expect((await store.listOverdue(Date.now())).map((r) => r.id)).not.toContain(overdue.id);
  });

  it("lists a conversation's requests in arrival order", async () => {
    const a = accepted({ conversation_id: "c9" });
    const b = accepted({ conversation_id: "c9" });
    await store.create(b);
    await store.create(a);
    await store.create(accepted({ conversation_id: "c9", tenant: "other" }));
    const list = await store.listConversation(conversationKey("acme", "c9"));
    expect(list.map((r) => r.id)).toEqual([a.id, b.id].sort());
  });

  it("records delivery state", async () => {
    const req = accepted({ callback_url: "https://hooks.example.com/x" });
    await store.create(req, { delivery: { status: "pending", attempts: 0 } });
    await store.setDelivery(req.id, { status: "failed", attempts: 7, last_error: "HTTP 500" });
    expect((await store.get(req.id))?.delivery).toEqual({
      status: "failed",
      attempts: 7,
      last_error: "HTTP 500",
    });
  });
});
