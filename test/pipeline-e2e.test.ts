import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServedFunction, serveFunction } from "../functions/runtime/serve.ts";
import { resultQueueName } from "../functions/shared/names.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { QueueUrls } from "../functions/shared/queues.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { type Simulator, startSimulator } from "../local/sim/server.ts";
import { startTestStack, type TestStack } from "./helpers/emulators.ts";

let stack: TestStack;
let sim: Simulator;
let served: ServedFunction[] = [];
let apiKey: string;

beforeAll(async () => {
  stack = await startTestStack();
  sim = await startSimulator({ port: 0, host: "127.0.0.1", timeScale: 0.02 });
  const env = {
    ...stack.env,
    INFERENCE_URL: sim.url,
    DEEPQUEUE_FALLBACK_MODEL: "deepseek-chat-small",
    DEEPQUEUE_WORKER_WAIT_SECONDS: "1",
  };
  const tenant = await provisionTenant(
    { sqs: stack.sqs, tenants: new DynamoTenantStore(stack.ddb, stack.prefix), prefix: stack.prefix },
    { tenant: "acme", dailyRequests: null },
  );
  apiKey = tenant.api_key;
  // Every function as `deepqueue serve <name>` runs it.
  served = await Promise.all(
    (["ingest", "cache", "batcher", "deliver"] as const).map((name) =>
      serveFunction(name, {
        env,
        port: 0,
        metricsPort: 0,
        host: "127.0.0.1",
        worker: { drainGraceMs: 2000 },
      }),
    ),
  );
});

afterAll(async () => {
  await Promise.all(served.map((s) => s.stop()));
  await sim.stop();
  await stack.stop();
});

describe("end to end over HTTP", () => {
  it("POST /v1/requests → answer in the record, on the tenant's result queue, and in the conversation", async () => {
    const ingest = served.find((s) => s.name === "ingest")!;
    const post = (body: unknown) =>
      fetch(`${ingest.url}/v1/requests`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const first = await post({ prompt: "Hello there", max_tokens: 16, conversation_id: "e2e-1" });
    expect(first.status).toBe(202);
    const { id } = (await first.json()) as { id: string };
    const second = await post({ prompt: "And again", max_tokens: 16, conversation_id: "e2e-1" });
    const { id: id2 } = (await second.json()) as { id: string };

    let record: { status: string; result?: { source: string; text: string } } | undefined;
    await expect
      .poll(
        async () => {
          const res = await fetch(`${ingest.url}/v1/requests/${id2}`, {
            headers: { authorization: `Bearer ${apiKey}` },
          });
          record = (await res.json()) as typeof record;
          return record?.status === "completed";
        },
        { timeout: 30_000 },
      )
      .toBe(true);
    expect(record?.result?.source).toBe("model");

    const url = await new QueueUrls(stack.sqs).get(resultQueueName(stack.prefix, "acme"));
    const events: Array<{ id: string; type: string; subject: string }> = [];
    await expect
      .poll(
        async () => {
          const out = await stack.sqs.send(
            new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
          );
          for (const m of out.Messages ?? []) events.push(JSON.parse(m.Body!));
          return events.length >= 2;
        },
        { timeout: 30_000 },
      )
      .toBe(true);
    expect(events.map((e) => e.subject).sort()).toEqual([id, id2].sort());
    expect(events.every((e) => e.type === "deepqueue.request.completed")).toBe(true);

    const conversation = await fetch(`${ingest.url}/v1/conversations/e2e-1`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    const body = (await conversation.json()) as { messages: Array<{ role: string; request_id?: string }> };
    expect(body.messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
  });

  it("serves /healthz and /metrics on each worker", async () => {
    for (const s of served.filter((f) => f.metricsUrl)) {
      expect((await fetch(`${s.metricsUrl}/healthz`)).status).toBe(200);
      const text = await (await fetch(`${s.metricsUrl}/metrics`)).text();
      expect(text).toContain("deepqueue_worker_messages_total");
    }
    const batcher = served.find((s) => s.name === "batcher")!;
    const text = await (await fetch(`${batcher.metricsUrl}/metrics`)).text();
    expect(text).toContain("deepqueue_batch_size_bucket");
    expect(text).toContain("deepqueue_model_latency_seconds");
  });
});
