import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import {
  drainRequestsQueue,
  json,
  makeTenant,
  post,
  recordsOf,
  startIngestServer,
} from "../../test/helpers/ingest.ts";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { DynamoUsageStore } from "../shared/stores/usage.ts";

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe("ingest under concurrency and faults", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  }, 30_000);
  afterAll(() => stack?.stop());

  it("two ingest replicas hammering one tenant near its quota admit exactly the quota", async () => {
    const quota = 25;
    const tenant = await makeTenant(stack, "busy", { dailyRequests: quota });
    // Two instances, each with its own SDK clients and auth cache, sharing only the emulators.
    const a = await startIngestServer(stack);
    const b = await startIngestServer(stack);
    try {
      const attempts = 70;
      const results = await Promise.all(
        Array.from({ length: attempts }, (_, i) =>
          post(i % 2 ? a.url : b.url, tenant.api_key, { prompt: `n${i}` }).then(async (res) => ({
            status: res.status,
            body: await json(res),
          })),
        ),
      );
      const accepted = results.filter((r) => r.status === 202);
      const refused = results.filter((r) => r.status === 429);
      expect(accepted).toHaveLength(quota);
      expect(refused).toHaveLength(attempts - quota);
      expect(new Set(refused.map((r) => r.body.error.code))).toEqual(new Set(["quota_exceeded"]));
      // Exactly the admitted ones exist: records, messages and the counter.
      const records = await recordsOf(stack, "busy");
      expect(records.map((r) => r.id).sort()).toEqual(accepted.map((r) => r.body.id).sort());
      const messages = (await drainRequestsQueue(stack)).filter(
        (m) => (m.data as { tenant: string }).tenant === "busy",
      );
      expect(messages).toHaveLength(quota);
      expect((await new DynamoUsageStore(stack.ddb, stack.prefix).get("busy")).requests).toBe(quota);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 60_000);

  it("queue endpoint down → 503 unavailable; no record left, quota and idempotency key given back", async () => {
    const tenant = await makeTenant(stack, "sqsdown", { dailyRequests: 3 });
    const deadSqs = createSqsClient({ endpoint: `http://127.0.0.1:${await closedPort()}`, maxAttempts: 1 });
    const down = await startIngestServer(stack, {}, { sqs: deadSqs });
    try {
      const body = JSON.stringify({ prompt: "lost?" });
      const res = await post(down.url, tenant.api_key, body, { "idempotency-key": "k-1" });
      expect(res.status).toBe(503);
      expect((await json(res)).error.code).toBe("unavailable");
      expect(await recordsOf(stack, "sqsdown")).toEqual([]);
      expect(await new DynamoUsageStore(stack.ddb, stack.prefix).get("sqsdown")).toEqual({
        requests: 0,
        tokens: 0,
      });
      const health = await fetch(`${down.url}/healthz`);
      expect(health.status).toBe(503);
      expect((await json(health)).checks).toEqual({ queue: false, table: true });

      // The retry on a healthy replica goes through with the same key, and counts once.
      const healthy = await startIngestServer(stack);
      try {
        const retry = await post(healthy.url, tenant.api_key, body, { "idempotency-key": "k-1" });
        expect(retry.status).toBe(202);
        const records = await recordsOf(stack, "sqsdown");
        expect(records).toHaveLength(1);
        expect(records[0]?.status).toBe("queued");
        expect((await new DynamoUsageStore(stack.ddb, stack.prefix).get("sqsdown")).requests).toBe(1);
      } finally {
        await healthy.close();
      }
    } finally {
      await down.close();
      deadSqs.destroy();
    }
  });

  it("table endpoint down → 503 unavailable, nothing sent", async () => {
    const tenant = await makeTenant(stack, "ddbdown");
    await drainRequestsQueue(stack); // what is there now stays invisible for the test
    const deadDdb = createDynamoClient({
      endpoint: `http://127.0.0.1:${await closedPort()}`,
      maxAttempts: 1,
    });
    const down = await startIngestServer(stack, {}, { ddb: deadDdb });
    try {
      const res = await post(down.url, tenant.api_key, { prompt: "x" });
      expect(res.status).toBe(503);
      const body = await json(res);
      expect(body.error.code).toBe("unavailable");
      expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
      expect((await fetch(`${down.url}/healthz`)).status).toBe(503);
      expect(await drainRequestsQueue(stack)).toEqual([]);
    } finally {
      await down.close();
      deadDdb.destroy();
    }
  });

  it("a record write that fails (after auth) → 503 and no message sent", async () => {
    const tenant = await makeTenant(stack, "putfails", { dailyRequests: 5 });
    const ddb = createDynamoClient({ endpoint: stack.emulators.dynamoEndpoint });
    ddb.middlewareStack.add(
      (next, context) => async (args) => {
        // Records go out as BatchWriteItem (several accepted requests per call) or a single put.
        const input = args.input as { TableName?: string; RequestItems?: Record<string, unknown> };
        const tables = input.TableName ? [input.TableName] : Object.keys(input.RequestItems ?? {});
        if (
          /^(Put(Item)?|BatchWrite(Item)?)Command$/.test(context.commandName ?? "") &&
          tables.some((t) => t.endsWith("-requests"))
        ) {
          throw Object.assign(new Error("InternalServerError"), { name: "InternalServerError" });
        }
        return next(args);
      },
      { step: "initialize" },
    );
    const broken = await startIngestServer(stack, {}, { ddb });
    try {
      const res = await post(broken.url, tenant.api_key, { prompt: "x" });
      expect(res.status).toBe(503);
      expect(await recordsOf(stack, "putfails")).toEqual([]);
      const sent = (await drainRequestsQueue(stack)).filter(
        (m) => (m.data as { tenant: string }).tenant === "putfails",
      );
      expect(sent).toEqual([]);
      expect((await new DynamoUsageStore(stack.ddb, stack.prefix).get("putfails")).requests).toBe(0);
    } finally {
      await broken.close();
      ddb.destroy();
    }
  });
});
