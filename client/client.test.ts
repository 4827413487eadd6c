import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureQueueWithDlq } from "../functions/shared/bootstrap.ts";
import { claimCheck } from "../functions/shared/claim-check.ts";
import { resultQueueName } from "../functions/shared/names.ts";
import { resultEvent } from "../functions/shared/results.ts";
import { DynamoRequestStore } from "../functions/shared/stores/requests.ts";
import { ANSWER, createRequest } from "../test/helpers/delivery.ts";
import { startTestStack, type TestStack } from "../test/helpers/emulators.ts";
import {
  DeepqueueApiError,
  DeepqueueClient,
  type RequestRecord,
  ResultConsumer,
  WaitTimeoutError,
} from "./index.ts";

let stack: TestStack;
let requests: DynamoRequestStore;
let queueUrl: string;

beforeAll(async () => {
  stack = await startTestStack();
  requests = new DynamoRequestStore(stack.ddb, stack.prefix);
  await ensureQueueWithDlq(stack.sqs, resultQueueName(stack.prefix, "acme"));
  queueUrl = (
    await stack.sqs.send(new GetQueueUrlCommand({ QueueName: resultQueueName(stack.prefix, "acme") }))
  ).QueueUrl!;
});

afterAll(() => stack.stop());

async function completedEvent() {
  const created = await createRequest(requests, "acme");
  const { record } = await requests.complete(created.id, ANSWER);
  return resultEvent(record);
}

async function put(body: unknown) {
  await stack.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }));
}

function consumer(overrides: Partial<ConstructorParameters<typeof ResultConsumer>[0]> = {}) {
  return new ResultConsumer({
    sqs: stack.sqs,
    prefix: stack.prefix,
    tenant: "acme",
    follow: false,
    waitTimeSeconds: 0,
    ...overrides,
  });
}

async function visibleCount(): Promise<number> {
  const out = await stack.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 1,
      VisibilityTimeout: 0,
    }),
  );
  return out.Messages?.length ?? 0;
}

describe("ResultConsumer", () => {
  it("hands each event over once although it is on the queue twice, and deletes both copies", async () => {
    const event = await completedEvent();
    await put(event);
    await put(event);
    const handled: string[] = [];
    await consumer().run((e) => {
      handled.push(e.id);
    });
    expect(handled).toEqual([event.id]);
    expect(await visibleCount()).toBe(0);
  });

  it("leaves an event on the queue when its handler throws, so it comes again", async () => {
    const event = await completedEvent();
    await put(event);
    const errors: unknown[] = [];
    await consumer({ visibilityTimeoutSeconds: 1, onError: (e) => errors.push(e) }).run(() => {
      throw new Error("downstream is down");
    });
    expect(errors).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1200));
    const again: string[] = [];
    await consumer({ waitTimeSeconds: 1 }).run((e) => {
      again.push(e.id);
    });
    expect(again).toEqual([event.id]);
  });

  it("as an async iterator, deletes an event only once the loop body for it finished", async () => {
    const first = await completedEvent();
    await put(first);
    const c = consumer({ visibilityTimeoutSeconds: 1 });
    await expect(async () => {
      for await (const _event of c) throw new Error("crash while handling");
    }).rejects.toThrow("crash while handling");
    await new Promise((r) => setTimeout(r, 1200));
    const ids: string[] = [];
    for await (const event of consumer({ waitTimeSeconds: 1 })) ids.push(event.id);
    expect(ids).toEqual([first.id]);
    expect(await visibleCount()).toBe(0);
  });

  it("resolves a claim check through the client's GET", async () => {
    const event = await completedEvent();
    await put(claimCheck(event, 100));
    const gets: string[] = [];
    const full = { ...event.data, result: { ...ANSWER } } as RequestRecord;
    const seen = [];
    for await (const e of consumer({
      client: {
        get: async (id: string) => {
          gets.push(id);
          return full;
        },
      },
    }))
      seen.push(e);
    expect(gets).toEqual([event.subject]);
    expect(seen[0]?.data.result?.text).toBe(ANSWER.text);
    expect(seen[0]).not.toHaveProperty("dataref");
  });

  it("reports what is not a result event and leaves it for the queue's DLQ", async () => {
    await put({ hello: "world" });
    const errors: unknown[] = [];
    const handled: unknown[] = [];
    await consumer({ visibilityTimeoutSeconds: 1, onError: (e) => errors.push(e) }).run((e) =>
      handled.push(e),
    );
    expect(handled).toEqual([]);
    expect(String(errors[0])).toContain("not a result event");
  });

  it("finds the queue through AWS_ENDPOINT_URL_SQS when given no SQS client", async () => {
    const event = await completedEvent();
    await put(event);
    const saved = process.env.AWS_ENDPOINT_URL_SQS;
    process.env.AWS_ENDPOINT_URL_SQS = stack.emulators.sqsEndpoint;
    try {
      const ids: string[] = [];
      const c = new ResultConsumer({
        prefix: stack.prefix,
        tenant: "acme",
        follow: false,
        waitTimeSeconds: 1,
      });
      await c.run((e) => {
        ids.push(e.id);
      });
      expect(ids).toEqual([event.id]);
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_SQS;
      else process.env.AWS_ENDPOINT_URL_SQS = saved;
    }
  });

  it("says how to fix a missing result queue", async () => {
    await expect(consumer({ tenant: "nobody" }).run(() => {})).rejects.toThrow(
      /no result queue t\w+-results-nobody: make the tenant first/,
    );
  });

  it("stop() ends a long poll promptly", async () => {
    await new Promise((r) => setTimeout(r, 1200));
    await consumer().run(() => {}); // clear the queue
    const c = consumer({ follow: true, waitTimeSeconds: 20 });
    const running = c.run(() => {});
    setTimeout(() => c.stop(), 100);
    await expect(running).resolves.toBeUndefined();
  });
});

describe("DeepqueueClient", () => {
  async function fakeIngest() {
    const seen: Array<{ method: string; url: string; auth?: string; key?: string; body: string }> = [];
    let polls = 0;
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        seen.push({
          method: req.method!,
          url: req.url!,
          auth: req.headers.authorization,
          key: req.headers["idempotency-key"] as string | undefined,
          body,
        });
        const json = (status: number, value: unknown, headers: Record<string, string> = {}) =>
          res
            .writeHead(status, { "content-type": "application/json", ...headers })
            .end(JSON.stringify(value));
        if (req.headers.authorization !== "Bearer dq_test")
          return json(401, { error: { code: "unauthorized", message: "no" } });
        if (req.method === "POST")
          return json(202, { id: "req_1", status: "queued", status_url: "/v1/requests/req_1" });
        if (req.url === "/v1/requests/req_1") {
          polls += 1;
          if (polls === 2)
            return json(503, { error: { code: "unavailable", message: "blip" } }, { "retry-after": "0" });
          const done = polls >= 4;
          return json(200, {
            id: "req_1",
            status: done ? "completed" : "processing",
            model: "deepseek-chat",
            created_at: new Date().toISOString(),
            ...(done ? { result: ANSWER } : {}),
          });
        }
        if (req.url === "/v1/conversations/c1") return json(200, { id: "c1", messages: [] });
        return json(404, { error: { code: "not_found", message: "not found" } });
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { server, seen, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  it("submits, polls through a 503 until terminal, and reads conversations", async () => {
    const ingest = await fakeIngest();
    try {
      const dq = new DeepqueueClient({ baseUrl: ingest.url, apiKey: "dq_test" });
      const accepted = await dq.submit({ prompt: "hi", max_tokens: 8 }, { idempotencyKey: "k1" });
      expect(accepted.id).toBe("req_1");
      expect(ingest.seen[0]).toMatchObject({
        method: "POST",
        url: "/v1/requests",
        auth: "Bearer dq_test",
        key: "k1",
      });
      expect(JSON.parse(ingest.seen[0]!.body)).toEqual({ prompt: "hi", max_tokens: 8 });
      const record = await dq.waitFor("req_1", { intervalMs: 5 });
      expect(record.result?.text).toBe(ANSWER.text);
      expect(await dq.conversation("c1")).toEqual({ id: "c1", messages: [] });
      await expect(dq.get("nope")).rejects.toMatchObject({ status: 404, code: "not_found" });
      const wrong = new DeepqueueClient({ baseUrl: ingest.url, apiKey: "bad" });
      await expect(wrong.get("req_1")).rejects.toBeInstanceOf(DeepqueueApiError);
    } finally {
      ingest.server.close();
    }
  });

  it("gives up waiting after its timeout", async () => {
    const ingest = await fakeIngest();
    try {
      const dq = new DeepqueueClient({ baseUrl: ingest.url, apiKey: "dq_test" });
      await expect(dq.waitFor("req_1", { intervalMs: 50, timeoutMs: 10 })).rejects.toBeInstanceOf(
        WaitTimeoutError,
      );
    } finally {
      ingest.server.close();
    }
  });
});
