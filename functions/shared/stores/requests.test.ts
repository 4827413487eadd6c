import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AcceptedRequest } from "../../../events/index.ts";
import { startTestStack, type TestStack } from "../../../test/helpers/emulators.ts";
import { createDynamoClient } from "../clients.ts";
import { newRequestId } from "../ids.ts";
import { resultEvent, resultEventId } from "../results.ts";
import {
  conversationKey,
  DynamoRequestStore,
  recentBucket,
  tenantBucket,
  toPublicRecord,
} from "./requests.ts";

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

describe("the recent indexes' partition keys", () => {
  it("spread requests by UTC day (or tenant) and the id's last hex digit", () => {
    expect(recentBucket("req_0193ab", "2026-11-28T23:59:59.999Z")).toBe("2026-11-28#3");
    expect(recentBucket("req_0193af", "2026-11-29T00:00:00.000Z")).toBe("2026-11-29#7");
    expect(tenantBucket("acme", "req_0193a8")).toBe("acme#0");
  });
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
    // Three days ago: the recent-requests test below lists today's newest and must not see these.
    const created_at = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const reqs = Array.from({ length: 30 }, () => accepted({ created_at }));
    const results = await store.createMany(
      reqs.map((request) => ({ request, options: { traceparent: "t" } })),
    );
    expect(results.map((r) => (r instanceof Error ? r.message : r.id))).toEqual(reqs.map((r) => r.id));
    for (const req of [reqs[0]!, reqs[29]!]) {
      expect(await store.get(req.id)).toMatchObject({ id: req.id, status: "queued", traceparent: "t" });
    }
  });

  it("a processing marker shows as `processing` only while the record is queued, and only when asked", async () => {
    // Not today: the recent-requests test lists today's newest and counts them.
    const req = accepted({ created_at: new Date(Date.now() - 3 * 86_400_000).toISOString() });
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

  it("keeps a timeline inside the writes it already makes: pick-up time, source, every callback attempt", async () => {
    const req = accepted();
    await store.create(req, { delivery: { status: "pending", attempts: 0 } });
    await store.markProcessing([req.id]);
    await store.complete(req.id, { ...answer("x"), source: "cache" });
    await store.setDelivery(
      req.id,
      { status: "pending", attempts: 1, last_attempt_at: req.created_at, last_error: "HTTP 503" },
      { at: req.created_at, outcome: "retry", status: 503, error: "HTTP 503" },
    );
    await store.setDelivery(
      req.id,
      { status: "delivered", attempts: 2, last_attempt_at: req.created_at },
      { at: req.created_at, outcome: "delivered", status: 200 },
    );
    const stored = (await store.get(req.id, { progress: true }))!;
    expect(Date.parse(stored.processing_at!)).toBeGreaterThanOrEqual(Date.parse(req.created_at));
    expect(stored.callback_attempts?.map((a) => [a.outcome, a.status])).toEqual([
      ["retry", 503],
      ["delivered", 200],
    ]);
    // Index-only attributes stay out of the record.
    expect(stored).not.toHaveProperty("recent_bucket");
    expect(stored).not.toHaveProperty("source");
    expect(toPublicRecord(stored)).not.toHaveProperty("callback_attempts");
  });

  it("lists recent requests newest first from the indexes, by tenant and by status, across days", async () => {
    const tenant = `recent${Date.now() % 100000}`;
    // Two seconds before today's UTC midnight (inside the retention, so not expired on read).
    const base = Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00.000Z`) - 2000;
    const made: AcceptedRequest[] = [];
    for (let i = 0; i < 9; i++) {
      // Two days, one request every half second around midnight; ids have random last digits (shards).
      const created = new Date(base + i * 500).toISOString();
      const req = accepted({ tenant, created_at: created });
      made.push(req);
      await store.create(req);
    }
    await store.complete(made[3]!.id, answer("done"));
    const other = accepted({ tenant: `${tenant}b`, created_at: new Date(base + 100).toISOString() });
    await store.create(other);
    const now = new Date(base + 60_000);
    const newestFirst = [...made].reverse().map((r) => r.id);

    const byTenant = await store.listRecent({ tenant, limit: 5 });
    expect(byTenant.map((r) => r.id)).toEqual(newestFirst.slice(0, 5));
    expect(byTenant[0]).toMatchObject({ tenant, status: "queued", model: "deepseek-chat" });

    const all = await store.listRecent({ now, limit: 20 });
    const ours = all.filter((r) => r.tenant === tenant || r.tenant === other.tenant).map((r) => r.id);
    expect(ours).toEqual([...newestFirst.slice(0, 8), other.id, newestFirst[8]]);

    const completed = await store.listRecent({ tenant, status: "completed" });
    expect(completed).toEqual([
      expect.objectContaining({
        id: made[3]!.id,
        status: "completed",
        source: "model",
        completed_at: expect.any(String),
      }),
    ]);
    const completedAll = await store.listRecent({ now, status: "completed" });
    expect(completedAll.map((r) => r.id)).toContain(made[3]!.id);
    expect(completedAll.every((r) => r.status === "completed")).toBe(true);
  });

  it("writes the index keys and stage times inside the calls it already made: one DynamoDB call per step", async () => {
    const ddb = createDynamoClient({ endpoint: stack.emulators.dynamoEndpoint });
    const sent: string[] = [];
    ddb.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push(String(context.commandName));
        return next(args);
      },
      { step: "initialize", name: "countCalls" },
    );
    const counted = new DynamoRequestStore(ddb, stack.prefix);
    const req = accepted();
    await counted.create(req, { delivery: { status: "pending", attempts: 0 } });
    await counted.markProcessing([req.id]);
    await counted.complete(req.id, answer("x"));
    await counted.setDelivery(
      req.id,
      { status: "delivered", attempts: 1, last_attempt_at: req.created_at },
      { at: req.created_at, outcome: "delivered", status: 204 },
    );
    // Create, the processing marker (a BatchWriteItem per batch in the batcher), complete, delivery.
    expect(sent).toEqual([
      "PutItemCommand",
      "BatchWriteItemCommand",
      "UpdateItemCommand",
      "UpdateItemCommand",
    ]);
    ddb.destroy();
    const [listed] = await store.listRecent({ tenant: req.tenant, limit: 1 });
    expect(listed).toMatchObject({ id: req.id, status: "completed", source: "model" });
  });
});
