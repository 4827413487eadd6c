import { GetQueueUrlCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { resultEventSchema } from "../../events/index.ts";
import { runCli } from "../../test/helpers/cli.ts";
import {
  ANSWER,
  completeAndSend,
  createRequest,
  drain,
  pump,
  startReceiver,
} from "../../test/helpers/delivery.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { createLogger } from "../shared/logger.ts";
import { registry } from "../shared/metrics.ts";
import { dlqName, queueName, resultQueueName } from "../shared/names.ts";
import { provisionTenant } from "../shared/provision.ts";
import { deliveryEvent } from "../shared/results.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { type DeliverOptions, ResultDeliverer } from "./deliver.ts";
import { DELIVERY_EXTENSIONS } from "./delivery-queue.ts";
import { createDeliverHandler } from "./handler.ts";

let stack: TestStack;
let requests: DynamoRequestStore;
let tenants: DynamoTenantStore;
let secret: string;
const urls = { delivery: "", dlq: "", results: "" };
const receivers: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  stack = await startTestStack();
  requests = new DynamoRequestStore(stack.ddb, stack.prefix);
  tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  const made = await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "acme" });
  secret = made.webhook_secret;
  const url = async (name: string) =>
    (await stack.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;
  urls.delivery = await url(queueName(stack.prefix, "delivery"));
  urls.dlq = await url(dlqName(queueName(stack.prefix, "delivery")));
  urls.results = await url(resultQueueName(stack.prefix, "acme"));
});

afterEach(async () => {
  while (receivers.length) await receivers.pop()!.close();
  // Each test starts with empty queues.
  await drain(stack.sqs, urls.results);
  await drain(stack.sqs, urls.dlq);
});

afterAll(() => stack.stop());

function deps(overrides: Partial<DeliverOptions> = {}): DeliverOptions {
  return {
    sqs: stack.sqs,
    requests,
    tenants,
    prefix: stack.prefix,
    devMode: true,
    schedule: [0, 0, 0],
    jitter: 0,
    logger: createLogger({ level: "silent" }),
    ...overrides,
  };
}

async function receiver(answers: Parameters<typeof startReceiver>[0]) {
  const r = await startReceiver(answers);
  receivers.push(r);
  return r;
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const found = (await registry.getSingleMetric(name)?.get())?.values.find((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return found?.value ?? 0;
}

async function resultEvents() {
  return (await drain(stack.sqs, urls.results)).map((m) => JSON.parse(m.Body!) as Record<string, unknown>);
}

const send = (callbackUrl?: string) =>
  completeAndSend({ sqs: stack.sqs, requests, deliveryQueueUrl: urls.delivery }, "acme", {
    ...(callbackUrl ? { callbackUrl } : {}),
  });

describe("deliver, over real HTTP and the emulators", () => {
  it("retries a failing receiver through the queue; the third attempt verifies with the same webhook-id", async () => {
    const hook = await receiver([500, 503, 204]);
    const record = await send(hook.url);
    const handler = createDeliverHandler(deps());

    await pump(
      stack.sqs,
      urls.delivery,
      handler,
      async () => (await requests.get(record.id))?.delivery?.status === "delivered",
    );

    expect(hook.calls).toHaveLength(3);
    const ids = hook.calls.map((c) => c.headers["webhook-id"]);
    expect(new Set(ids)).toEqual(new Set([`evt_${record.id}`]));
    const last = hook.calls[2]!;
    const verified = new Webhook(secret).verify(last.body, last.headers as Record<string, string>);
    expect(resultEventSchema.parse(verified)).toMatchObject({
      type: "deepqueue.request.completed",
      subject: record.id,
      data: { status: "completed", result: { text: ANSWER.text } },
    });
    expect((await requests.get(record.id))?.delivery).toMatchObject({ status: "delivered", attempts: 3 });
    // Each POST is on the record with its HTTP status (the dashboard's timeline).
    expect((await requests.get(record.id))?.callback_attempts?.map((a) => [a.outcome, a.status])).toEqual([
      ["retry", 500],
      ["retry", 503],
      ["delivered", 204],
    ]);
    // On the tenant queue exactly once, although the callback took three deliveries.
    const events = await resultEvents();
    expect(events.map((e) => e.id)).toEqual([`evt_${record.id}`]);
  });

  it("stops at 410 Gone: one attempt, failed in the record, nothing dead-lettered", async () => {
    const hook = await receiver([410, 200]);
    const record = await send(hook.url);
    const handler = createDeliverHandler(deps());
    const before = await metric("deepqueue_callback_failures_total", { reason: "gone" });

    await pump(
      stack.sqs,
      urls.delivery,
      handler,
      async () => (await requests.get(record.id))?.delivery?.status === "failed",
    );
    await pump(stack.sqs, urls.delivery, handler, () => false, 3);

    expect(hook.calls).toHaveLength(1);
    expect((await requests.get(record.id))?.delivery).toMatchObject({ status: "failed", attempts: 1 });
    expect((await requests.get(record.id))?.callback_attempts).toEqual([
      { at: expect.any(String), outcome: "gone", status: 410 },
    ]);
    expect(await metric("deepqueue_callback_failures_total", { reason: "gone" })).toBe(before + 1);
    expect(await drain(stack.sqs, urls.dlq)).toHaveLength(0);
    expect((await resultEvents()).map((e) => e.id)).toEqual([`evt_${record.id}`]);
  });

  it("refuses a callback that now resolves to a private address, and still puts the event on the tenant queue", async () => {
    const hook = await receiver([200]);
    // Accepted at ingest as a public host; by delivery time its DNS answers 10.0.0.7.
    const callback = `https://hooks.example.test:${hook.port}/dq`;
    const record = await send(callback);
    const lookups: string[] = [];
    const handler = createDeliverHandler(
      deps({
        lookup: async (host) => {
          lookups.push(host);
          return [{ address: "10.0.0.7", family: 4 }];
        },
      }),
    );

    await pump(
      stack.sqs,
      urls.delivery,
      handler,
      async () => (await requests.get(record.id))?.delivery?.status === "failed",
    );

    expect(lookups).toEqual(["hooks.example.test"]);
    expect(hook.calls).toHaveLength(0);
    const delivery = (await requests.get(record.id))?.delivery;
    expect(delivery).toMatchObject({ status: "failed", attempts: 0 });
    expect(delivery?.last_error).toContain("10.0.0.7");
    const dead = await drain(stack.sqs, urls.dlq);
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]!.Body!)[DELIVERY_EXTENSIONS.failure]).toMatch(/^refused/);
    expect((await resultEvents()).map((e) => e.id)).toEqual([`evt_${record.id}`]);
  });

  it("connects to the address the check approved: one DNS answer per attempt, so rebinding cannot redirect it", async () => {
    const hook = await receiver([200]);
    const record = await send(`http://hooks.localtest:${hook.port}/dq?x=1`);
    const answers = ["127.0.0.1", "10.0.0.9"]; // a rebinding resolver: the second answer is private
    const lookups: string[] = [];
    const handler = createDeliverHandler(
      deps({
        lookup: async (host) => {
          lookups.push(host);
          return [{ address: answers[Math.min(lookups.length, answers.length) - 1]!, family: 4 }];
        },
      }),
    );

    await pump(
      stack.sqs,
      urls.delivery,
      handler,
      async () => (await requests.get(record.id))?.delivery?.status === "delivered",
    );

    expect(lookups).toEqual(["hooks.localtest"]);
    expect(hook.calls).toHaveLength(1);
    expect(hook.calls[0]!.headers.host).toBe(`hooks.localtest:${hook.port}`);
    expect(hook.calls[0]!.headers["content-type"]).toBe("application/cloudevents+json; charset=utf-8");
  });

  it("dead-letters after the schedule is used up and counts the failure", async () => {
    const hook = await receiver([500]);
    const record = await send(hook.url);
    const handler = createDeliverHandler(deps({ schedule: [0, 0] }));
    const before = await metric("deepqueue_callback_failures_total", { reason: "exhausted" });

    await pump(
      stack.sqs,
      urls.delivery,
      handler,
      async () => (await requests.get(record.id))?.delivery?.status === "failed",
    );

    expect(hook.calls).toHaveLength(3);
    expect((await requests.get(record.id))?.delivery).toMatchObject({
      status: "failed",
      attempts: 3,
      last_error: "3 attempts failed; last: receiver answered 500",
    });
    expect(await metric("deepqueue_callback_failures_total", { reason: "exhausted" })).toBe(before + 1);
    const dead = await drain(stack.sqs, urls.dlq);
    expect(dead).toHaveLength(1);
    const body = JSON.parse(dead[0]!.Body!);
    expect(body.data.event.id).toBe(`evt_${record.id}`);
    // Redriven, it starts a fresh schedule and does not put the event on the tenant queue again.
    expect(body[DELIVERY_EXTENSIONS.attempt]).toBeUndefined();
    expect(body[DELIVERY_EXTENSIONS.published]).toBe(true);
    expect((await resultEvents()).map((e) => e.id)).toEqual([`evt_${record.id}`]);
  });

  it("treats 3xx, timeouts and refused connections as retryable", async () => {
    const redirect = await receiver([{ status: 301, headers: { location: "http://127.0.0.1:1/" } }]);
    const hang = await receiver(["hang"]);
    const deliverer = new ResultDeliverer(deps({ callbackTimeoutMs: 300 }));
    const closed = await receiver([200]);
    const closedUrl = closed.url;
    await closed.close();

    const outcomes = [];
    for (const url of [redirect.url, hang.url, closedUrl]) {
      const record = await send(url);
      await drain(stack.sqs, urls.delivery);
      outcomes.push(await deliverer.deliver(JSON.stringify(deliveryEvent(record))));
    }
    expect(outcomes.map((o) => o.kind)).toEqual(["retry-scheduled", "retry-scheduled", "retry-scheduled"]);
    expect(outcomes.map((o) => ("error" in o ? o.error : ""))).toEqual([
      "receiver answered 301",
      "no answer within 0.3 s",
      expect.stringContaining("could not reach the receiver"),
    ]);
    expect(redirect.calls).toHaveLength(1);
    await drain(stack.sqs, urls.delivery);
  });

  it("honours Retry-After when it is longer than the scheduled delay", async () => {
    const hook = await receiver([{ status: 429, headers: { "retry-after": "120" } }]);
    const record = await send(hook.url);
    await drain(stack.sqs, urls.delivery);
    const outcome = await new ResultDeliverer(deps({ schedule: [5] })).deliver(
      JSON.stringify(deliveryEvent(record)),
    );
    expect(outcome).toMatchObject({ kind: "retry-scheduled", delaySeconds: 120 });
    const [requeued] = await drain(stack.sqs, urls.delivery);
    // Visible only after the delay: drained at once, the queue held nothing yet.
    expect(requeued).toBeUndefined();
  });

  it("after `deepqueue keys rotate-secret`, signs with both secrets; each verifies on its own", async () => {
    const hook = await receiver([200]);
    const { stdout } = await runCli(["keys", "rotate-secret", "--tenant", "acme", "--json"], stack.env);
    const newSecret = JSON.parse(stdout).webhook_secret as string;
    expect(newSecret).toMatch(/^whsec_/);
    const record = await send(hook.url);
    await pump(stack.sqs, urls.delivery, createDeliverHandler(deps()), () => hook.calls.length > 0);

    const call = hook.calls[0]!;
    const signatures = String(call.headers["webhook-signature"]).split(" ");
    expect(signatures).toHaveLength(2);
    expect(signatures.every((s) => s.startsWith("v1,"))).toBe(true);
    for (const key of [secret, newSecret]) {
      expect(new Webhook(key).verify(call.body, call.headers as Record<string, string>)).toMatchObject({
        subject: record.id,
      });
    }
    expect(() =>
      new Webhook("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").verify(
        call.body,
        call.headers as Record<string, string>,
      ),
    ).toThrow();
    secret = newSecret;
  });

  it("puts results without a callback on the tenant queue and nothing else", async () => {
    const record = await send();
    await pump(stack.sqs, urls.delivery, createDeliverHandler(deps()), () => false, 3);
    const events = await resultEvents();
    expect(events).toHaveLength(1);
    expect(resultEventSchema.parse(events[0])).toMatchObject({
      id: `evt_${record.id}`,
      data: { id: record.id },
    });
    expect((await requests.get(record.id))?.delivery).toBeUndefined();
  });

  it("claim-checks a result too large for a queue message; the callback still gets it whole", async () => {
    const hook = await receiver([200]);
    const created = await createRequest(requests, "acme", { callbackUrl: hook.url });
    const big = { ...ANSWER, text: "é".repeat(150_000) }; // 300 kB of UTF-8
    const { record } = await requests.complete(created.id, big);
    // The batcher's delivery message fits SQS: it carries the claim check, not the text.
    const message = deliveryEvent(record);
    expect(Buffer.byteLength(JSON.stringify(message))).toBeLessThan(16 * 1024);
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: urls.delivery, MessageBody: JSON.stringify(message) }),
    );
    await pump(stack.sqs, urls.delivery, createDeliverHandler(deps()), () => hook.calls.length > 0);

    const [event] = await resultEvents();
    expect(event).toMatchObject({ id: `evt_${record.id}`, dataref: `/v1/requests/${record.id}` });
    expect(Buffer.byteLength(JSON.stringify(event))).toBeLessThan(16 * 1024);
    // The callback has no size limit: deliver reads the record back and sends the event whole, same id.
    const sent = JSON.parse(hook.calls[0]!.body);
    expect(sent).toMatchObject({ id: `evt_${record.id}`, data: { result: { text: big.text } } });
    expect(sent).not.toHaveProperty("dataref");
    expect(
      new Webhook(secret).verify(hook.calls[0]!.body, hook.calls[0]!.headers as Record<string, string>),
    ).toBeTruthy();
  });

  it("dead-letters a malformed message at once", async () => {
    const outcome = await new ResultDeliverer(deps()).deliver(
      JSON.stringify({ specversion: "1.0", data: {} }),
    );
    expect(outcome.kind).toBe("invalid");
    const dead = await drain(stack.sqs, urls.dlq);
    expect(dead).toHaveLength(1);
  });

  it("chains waits longer than SQS's 15-minute delay", async () => {
    const record = await send();
    await drain(stack.sqs, urls.delivery);
    const body = {
      ...deliveryEvent(record),
      [DELIVERY_EXTENSIONS.attempt]: 4,
      [DELIVERY_EXTENSIONS.notBefore]: new Date(Date.now() + 5 * 3600_000).toISOString(),
      [DELIVERY_EXTENSIONS.published]: true,
    };
    const outcome = await new ResultDeliverer(deps()).deliver(JSON.stringify(body));
    expect(outcome.kind).toBe("deferred");
    expect(outcome.kind === "deferred" && outcome.delaySeconds).toBeGreaterThan(900);
    expect(await resultEvents()).toHaveLength(0);
  });
});
