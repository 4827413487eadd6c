import { request as httpRequest } from "node:http";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inferenceRequestedEventSchema } from "../../events/index.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import {
  drainRequestsQueue,
  type IngestServer,
  json,
  makeTenant,
  post,
  recordsOf,
  startIngestServer,
} from "../../test/helpers/ingest.ts";
import { metricsText } from "../shared/metrics.ts";
import { DynamoConversationStore } from "../shared/stores/conversations.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { createIngestHandler } from "./handler.ts";

describe("ingest over HTTP against the emulators", () => {
  let stack: TestStack;
  let server: IngestServer;
  let acme: { api_key: string };
  let other: { api_key: string };

  beforeAll(async () => {
    stack = await startTestStack();
    server = await startIngestServer(stack);
    acme = await makeTenant(stack, "acme", { dailyRequests: null });
    other = await makeTenant(stack, "other");
  }, 30_000);
  afterAll(async () => {
    await server?.close();
    await stack?.stop();
  });

  it("accepts a prompt: 202, a queued record, one CloudEvent for the batcher, a debug line", async () => {
    const parentTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const res = await post(
      server.url,
      acme.api_key,
      { prompt: "Say hi", metadata: { ticket: 7 } },
      {
        traceparent: parentTrace,
      },
    );
    expect(res.status).toBe(202);
    const body = await json(res);
    expect(body).toEqual({
      id: expect.stringMatching(/^req_/),
      status: "queued",
      status_url: `/v1/requests/${body.id}`,
    });
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("location")).toBe(body.status_url);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("permissions-policy")).toBeNull();

    const record = await fetch(`${server.url}${body.status_url}`, {
      headers: { authorization: `Bearer ${acme.api_key}` },
    });
    expect(record.status).toBe(200);
    expect(await json(record)).toMatchObject({
      id: body.id,
      status: "queued",
      model: "deepseek-chat",
      metadata: { ticket: 7 },
    });

    const messages = await drainRequestsQueue(stack);
    const sent = messages.find((m) => m.subject === body.id);
    // temperature 0.7 and no conversation: nothing for the cache stage, straight to the batcher.
    expect(sent?._queue).toBe("inference");
    const event = inferenceRequestedEventSchema.parse(sent);
    expect(event.type).toBe("deepqueue.inference.requested");
    expect(event.data).toMatchObject({
      id: body.id,
      tenant: "acme",
      prompt: "Say hi",
      max_tokens: 512,
      temperature: 0.7,
      cache: true,
    });
    expect(event.data.prompt_tokens).toBeGreaterThan(1);
    expect(Date.parse(event.data.deadline_at) - Date.parse(event.data.created_at)).toBe(900_000);
    // The trace continues the caller's: same trace id, a new span.
    expect(event.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(event.traceparent).not.toBe(parentTrace);

    const line = server.logs.find((l) => l.request_id === body.id);
    expect(line).toMatchObject({ tenant: "acme", prompt_tokens: event.data.prompt_tokens });
    expect(typeof line?.latency_ms).toBe("number");
  });

  it("sends cacheable requests and conversation turns to the cache stage, the rest straight to the batcher", async () => {
    const bodies = {
      cacheable: { prompt: "route me", temperature: 0 },
      optedOut: { prompt: "route me", temperature: 0, cache: false },
      sampled: { prompt: "route me", temperature: 0.9 },
      turn: { prompt: "route me", temperature: 0.9, conversation_id: "route-1" },
    };
    const ids: Record<string, string> = {};
    for (const [name, body] of Object.entries(bodies)) {
      const res = await post(server.url, acme.api_key, body);
      expect(res.status).toBe(202);
      ids[name] = (await json(res)).id as string;
    }
    const messages = await drainRequestsQueue(stack);
    const where = (name: string) =>
      messages.filter((m) => m.subject === ids[name]).map((m) => [m._queue, m.type]);
    expect(where("cacheable")).toEqual([["requests", "deepqueue.request.accepted"]]);
    expect(where("turn")).toEqual([["requests", "deepqueue.request.accepted"]]);
    expect(where("optedOut")).toEqual([["inference", "deepqueue.inference.requested"]]);
    expect(where("sampled")).toEqual([["inference", "deepqueue.inference.requested"]]);
  });

  it("records delivery as pending when a callback_url is given", async () => {
    const res = await post(server.url, acme.api_key, {
      messages: [{ role: "user", content: "hi" }],
      callback_url: "https://hooks.example.com/dq",
      model: "deepseek-coder",
    });
    expect(res.status).toBe(202);
    const { id } = await json(res);
    const record = await json(
      await fetch(`${server.url}/v1/requests/${id}`, {
        headers: { authorization: `Bearer ${acme.api_key}` },
      }),
    );
    expect(record).toMatchObject({ model: "deepseek-coder", delivery: { status: "pending", attempts: 0 } });
  });

  describe("the documented error table (docs/api.md#errors)", () => {
    const expectError = async (res: Response, status: number, code: string) => {
      expect(res.status).toBe(status);
      expect(res.headers.get("content-type")).toContain("application/json");
      const body = await json(res);
      expect(body).toEqual({ error: { code, message: expect.any(String) } });
      expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+/); // no stack
      return body.error.message as string;
    };

    it("400 invalid_request: malformed JSON", async () => {
      const message = await expectError(
        await post(server.url, acme.api_key, '{"prompt": "x",'),
        400,
        "invalid_request",
      );
      expect(message).toMatch(/malformed JSON/);
      await expectError(await post(server.url, acme.api_key, ""), 400, "invalid_request");
      await expectError(await post(server.url, acme.api_key, "[1,2]"), 400, "invalid_request");
    });

    it("400 invalid_request: schema violations name the field", async () => {
      expect(
        await expectError(
          await post(server.url, acme.api_key, { prompt: "x", max_tokens: 99_999 }),
          400,
          "invalid_request",
        ),
      ).toMatch(/^max_tokens:/);
      expect(
        await expectError(
          await post(server.url, acme.api_key, { prompt: "x", max_token: 5 }),
          400,
          "invalid_request",
        ),
      ).toMatch(/max_token/);
      expect(
        await expectError(
          await post(server.url, acme.api_key, { prompt: "x", messages: [{ role: "user", content: "y" }] }),
          400,
          "invalid_request",
        ),
      ).toMatch(/exactly one of prompt or messages/);
      expect(
        await expectError(
          await post(server.url, acme.api_key, { prompt: "x", temperature: 3 }),
          400,
          "invalid_request",
        ),
      ).toMatch(/^temperature:/);
      expect(
        await expectError(
          await post(server.url, acme.api_key, { prompt: "x" }, { "idempotency-key": "k".repeat(256) }),
          400,
          "invalid_request",
        ),
      ).toMatch(/Idempotency-Key/);
    });

    it("400 prompt_too_long: prompt tokens + max_tokens over the model's window", async () => {
      const before = await recordsOf(stack, "acme");
      const prompt = "lorem ipsum dolor sit amet ".repeat(800); // ~4000 tokens
      const message = await expectError(
        await post(server.url, acme.api_key, { prompt, max_tokens: 512 }),
        400,
        "prompt_too_long",
      );
      expect(message).toMatch(/4096-token/);
      // A short prompt fits even with a large max_tokens.
      expect((await post(server.url, acme.api_key, { prompt: "short", max_tokens: 4000 })).status).toBe(202);
      expect((await recordsOf(stack, "acme")).length).toBe(before.length + 1);
    });

    it("400 invalid_callback_url: not https, or private / metadata addresses", async () => {
      for (const callback_url of [
        "http://hooks.example.com/dq",
        "https://internal.example.com/dq",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/x",
      ]) {
        await expectError(
          await post(server.url, acme.api_key, { prompt: "x", callback_url }),
          400,
          "invalid_callback_url",
        );
      }
    });

    it("401 unauthorized: missing, wrong or malformed key", async () => {
      await expectError(await post(server.url, undefined, { prompt: "x" }), 401, "unauthorized");
      await expectError(await post(server.url, "dq_wrong", { prompt: "x" }), 401, "unauthorized");
      await expectError(
        await post(server.url, undefined, { prompt: "x" }, { authorization: `Basic ${acme.api_key}` }),
        401,
        "unauthorized",
      );
      await expectError(await fetch(`${server.url}/v1/requests/req_x`), 401, "unauthorized");
    });

    it("401 unauthorized: a revoked key (once its cache entry is gone)", async () => {
      const gone = await makeTenant(stack, "gone");
      const uncached = await startIngestServer(stack, { DEEPQUEUE_AUTH_CACHE_SECONDS: "0" });
      try {
        expect((await post(uncached.url, gone.api_key, { prompt: "x" })).status).toBe(202);
        await new DynamoTenantStore(stack.ddb, stack.prefix).revoke("gone");
        await expectError(await post(uncached.url, gone.api_key, { prompt: "x" }), 401, "unauthorized");
      } finally {
        await uncached.close();
      }
    });

    it("404 not_found: unknown id, another tenant's request or conversation, unknown route", async () => {
      const mine = await json(await post(server.url, acme.api_key, { prompt: "mine" }));
      await expectError(
        await fetch(`${server.url}/v1/requests/${mine.id}`, {
          headers: { authorization: `Bearer ${other.api_key}` },
        }),
        404,
        "not_found",
      );
      await expectError(
        await fetch(`${server.url}/v1/requests/req_nope`, {
          headers: { authorization: `Bearer ${acme.api_key}` },
        }),
        404,
        "not_found",
      );
      const conversations = new DynamoConversationStore(stack.ddb, stack.prefix);
      await conversations.appendTurn("acme", "support-1", {
        request_id: mine.id,
        messages: [{ role: "user", content: "mine" }],
        answer: "yours",
        created_at: new Date().toISOString(),
      });
      const own = await fetch(`${server.url}/v1/conversations/support-1`, {
        headers: { authorization: `Bearer ${acme.api_key}` },
      });
      expect(own.status).toBe(200);
      expect(await json(own)).toMatchObject({
        id: "support-1",
        messages: [
          { role: "user", content: "mine", request_id: mine.id },
          { role: "assistant", content: "yours", request_id: mine.id },
        ],
      });
      await expectError(
        await fetch(`${server.url}/v1/conversations/support-1`, {
          headers: { authorization: `Bearer ${other.api_key}` },
        }),
        404,
        "not_found",
      );
      await expectError(await fetch(`${server.url}/v2/nothing`), 404, "not_found");
    });

    it("413 payload_too_large: a body over 256 KiB, before auth or parsing", async () => {
      const prompt = "x".repeat(300 * 1024);
      await expectError(await post(server.url, acme.api_key, { prompt }), 413, "payload_too_large");
    });

    it("413 payload_too_large on Lambda too, where no HTTP adapter reads the body", async () => {
      const lambda = createIngestHandler(server.deps);
      const event = {
        version: "2.0",
        routeKey: "$default",
        rawPath: "/v1/requests",
        rawQueryString: "",
        headers: { Authorization: `Bearer ${acme.api_key}`, "Content-Type": "application/json" },
        requestContext: { http: { method: "POST", path: "/v1/requests" } },
        isBase64Encoded: true,
        body: Buffer.from(JSON.stringify({ prompt: "x".repeat(300 * 1024) })).toString("base64"),
      } as unknown as APIGatewayProxyEventV2;
      const result = (await lambda(event, {} as Context)) as APIGatewayProxyStructuredResultV2;
      expect(result.statusCode).toBe(413);
      expect(JSON.parse(result.body ?? "{}").error.code).toBe("payload_too_large");
      // And the same handler accepts a normal base64 body (API Gateway encodes some content types).
      const ok = (await lambda(
        { ...event, body: Buffer.from('{"prompt":"via lambda"}').toString("base64") },
        {} as Context,
      )) as APIGatewayProxyStructuredResultV2;
      expect(ok.statusCode).toBe(202);
    });

    it("429 quota_exceeded with Retry-After to the UTC day's end; nothing left behind", async () => {
      const small = await makeTenant(stack, "small", { dailyRequests: 2 });
      expect((await post(server.url, small.api_key, { prompt: "1" })).status).toBe(202);
      expect((await post(server.url, small.api_key, { prompt: "2" })).status).toBe(202);
      const refused = await post(server.url, small.api_key, { prompt: "3" });
      await expectError(refused, 429, "quota_exceeded");
      const retryAfter = Number(refused.headers.get("retry-after"));
      const now = new Date();
      const toMidnight =
        (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000;
      expect(retryAfter).toBeGreaterThan(0);
      expect(Math.abs(retryAfter - toMidnight)).toBeLessThan(60);
      const records = await recordsOf(stack, "small");
      expect(records.map((r) => (r.request as { prompt: string }).prompt).sort()).toEqual(["1", "2"]);
      const messages = await drainRequestsQueue(stack);
      expect(messages.filter((m) => (m.data as { tenant: string }).tenant === "small")).toHaveLength(2);
    });

    it("429 quota_exceeded for the daily token quota (prompt + max_tokens counted at admission)", async () => {
      const tokens = await makeTenant(stack, "tokens", { dailyRequests: null, dailyTokens: 1000 });
      expect((await post(server.url, tokens.api_key, { prompt: "hi", max_tokens: 600 })).status).toBe(202);
      const refused = await post(server.url, tokens.api_key, { prompt: "hi", max_tokens: 600 });
      expect(await expectError(refused, 429, "quota_exceeded")).toMatch(/token quota/);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      // What is left fits a smaller request.
      expect((await post(server.url, tokens.api_key, { prompt: "hi", max_tokens: 300 })).status).toBe(202);
      const metrics = (await metricsText()).body;
      expect(metrics).toMatch(/deepqueue_quota_rejections_total\{kind="tokens"\} [1-9]/);
    });

    it("429 rate_limited with Retry-After when the per-replica rate is exceeded", async () => {
      const limited = await startIngestServer(stack, {
        DEEPQUEUE_RATE_LIMIT_PER_SECOND: "0.01",
        DEEPQUEUE_RATE_LIMIT_BURST: "1",
      });
      try {
        expect((await post(limited.url, acme.api_key, { prompt: "1" })).status).toBe(202);
        const refused = await post(limited.url, acme.api_key, { prompt: "2" });
        await expectError(refused, 429, "rate_limited");
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(90);
      } finally {
        await limited.close();
      }
    });
  });

  describe("Idempotency-Key", () => {
    it("same key + same body → 200 with the first id; one record, one message", async () => {
      const body = JSON.stringify({ prompt: "once only" });
      const first = await post(server.url, acme.api_key, body, { "idempotency-key": "order-1" });
      expect(first.status).toBe(202);
      const firstBody = await json(first);
      const again = await post(server.url, acme.api_key, body, { "idempotency-key": "order-1" });
      expect(again.status).toBe(200);
      expect(await json(again)).toEqual(firstBody);
      const records = (await recordsOf(stack, "acme")).filter(
        (r) => (r.request as { prompt?: string }).prompt === "once only",
      );
      expect(records).toHaveLength(1);
      const messages = await drainRequestsQueue(stack);
      expect(messages.filter((m) => (m.data as { prompt?: string }).prompt === "once only")).toHaveLength(1);
      // Keys are per tenant: the same key for another tenant is a new request.
      expect((await post(server.url, other.api_key, body, { "idempotency-key": "order-1" })).status).toBe(
        202,
      );
    });

    it("same key + different body → 422 idempotency_key_reused", async () => {
      expect(
        (await post(server.url, acme.api_key, { prompt: "a" }, { "idempotency-key": "order-2" })).status,
      ).toBe(202);
      const reused = await post(server.url, acme.api_key, { prompt: "b" }, { "idempotency-key": "order-2" });
      expect(reused.status).toBe(422);
      expect((await json(reused)).error.code).toBe("idempotency_key_reused");
    });

    it("while the first is still being accepted → 409 idempotency_in_progress, then 200", async () => {
      // A second ingest replica whose queue send waits on a gate: its request holds the key.
      const { createSqsClient } = await import("../shared/clients.ts");
      const slowSqs = createSqsClient({ endpoint: stack.emulators.sqsEndpoint });
      let open: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      let sending: () => void = () => {};
      const inSend = new Promise<void>((resolve) => {
        sending = resolve;
      });
      slowSqs.middlewareStack.add(
        (next, context) => async (args) => {
          // Ingest sends through SendMessageBatch (group commit), one message here.
          if (context.commandName === "SendMessageBatchCommand") {
            sending();
            await gate;
          }
          return next(args);
        },
        { step: "initialize" },
      );
      const slow = await startIngestServer(stack, {}, { sqs: slowSqs });
      try {
        const body = JSON.stringify({ prompt: "slow one" });
        const first = post(slow.url, acme.api_key, body, { "idempotency-key": "order-3" });
        await inSend;
        const concurrent = await post(server.url, acme.api_key, body, { "idempotency-key": "order-3" });
        expect(concurrent.status).toBe(409);
        expect((await json(concurrent)).error.code).toBe("idempotency_in_progress");
        expect(concurrent.headers.get("retry-after")).toBe("1");
        open();
        const firstRes = await first;
        expect(firstRes.status).toBe(202);
        const retry = await post(server.url, acme.api_key, body, { "idempotency-key": "order-3" });
        expect(retry.status).toBe(200);
        expect((await json(retry)).id).toBe((await json(firstRes)).id);
      } finally {
        open();
        await slow.close();
        slowSqs.destroy();
      }
    });
  });

  it("refuses a tenant whose abuse budget is spent before reading its body", async () => {
    const limited = await startIngestServer(stack, {
      DEEPQUEUE_ABUSE_BUDGET: "2",
      DEEPQUEUE_ABUSE_REFILL_PER_SECOND: "0.01",
    });
    try {
      const abuser = await makeTenant(stack, "abuser");
      for (let i = 0; i < 2; i++) {
        expect((await post(limited.url, abuser.api_key, { prompt: 1 })).status).toBe(400);
      }
      // The body is announced but never sent: only a refusal before reading it can answer.
      const answer = await new Promise<{ status: number; body: string; retryAfter: string | undefined }>(
        (resolve, reject) => {
          const req = httpRequest(`${limited.url}/v1/requests`, {
            method: "POST",
            headers: {
              authorization: `Bearer ${abuser.api_key}`,
              "content-type": "application/json",
              "content-length": "200000",
            },
          });
          req.on("response", (res) => {
            let body = "";
            res.on("data", (c: Buffer) => {
              body += c.toString();
            });
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                body,
                retryAfter: res.headers["retry-after"] as string,
              }),
            );
          });
          req.on("error", reject);
          req.write('{"prompt": "');
          setTimeout(() => req.destroy(new Error("no answer before the body was sent")), 10_000).unref();
        },
      );
      expect(answer.status).toBe(429);
      expect(JSON.parse(answer.body).error.code).toBe("rate_limited");
      expect(Number(answer.retryAfter)).toBeGreaterThan(0);
      // Other tenants are not affected.
      expect((await post(limited.url, acme.api_key, { prompt: "hello" })).status).toBe(202);
    } finally {
      await limited.close();
    }
  });

  it("GET /healthz on the public port; /metrics only where asked for", async () => {
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await json(health)).toEqual({ status: "ok", checks: { queue: true, table: true } });
    // Not routed publicly by default: it names tenants' error rates.
    expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
    const withMetrics = await startIngestServer(stack, { DEEPQUEUE_INGEST_PUBLIC_METRICS: "true" });
    const metrics = await fetch(`${withMetrics.url}/metrics`).finally(() => withMetrics.close());
    expect(metrics.headers.get("content-type")).toContain("text/plain");
    const text = await metrics.text();
    expect(text).toMatch(/deepqueue_ingest_requests_total\{outcome="accepted"\} [1-9]/);
    expect(text).toMatch(/deepqueue_ingest_requests_total\{outcome="invalid_request"\} [1-9]/);
    expect(text).toContain("deepqueue_ingest_accept_latency_seconds_bucket");
  });
});
