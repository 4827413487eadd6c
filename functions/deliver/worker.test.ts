import { GetQueueUrlCommand } from "@aws-sdk/client-sqs";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completeAndSend, drain, startReceiver } from "../../test/helpers/delivery.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { type ServedFunction, serveFunction } from "../runtime/serve.ts";
import { queueName, resultQueueName } from "../shared/names.ts";
import { provisionTenant } from "../shared/provision.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";

let stack: TestStack;
let served: ServedFunction;
let secret: string;
let requests: DynamoRequestStore;

beforeAll(async () => {
  stack = await startTestStack();
  requests = new DynamoRequestStore(stack.ddb, stack.prefix);
  const tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  secret = (await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "acme" }))
    .webhook_secret;
  served = await serveFunction("deliver", {
    env: { ...stack.env, DEEPQUEUE_DELIVERY_RETRY_SCHEDULE: "0,1,1" },
    metricsPort: 0,
    host: "127.0.0.1",
    worker: { waitTimeSeconds: 1, drainGraceMs: 1000 },
  });
});

afterAll(async () => {
  await served?.stop();
  await stack.stop();
});

describe("deliver as `deepqueue serve deliver` runs it", () => {
  it("retries through the queue until the receiver takes the event, then shows it in the record and metrics", async () => {
    const hook = await startReceiver([502, 500, 200]);
    try {
      const deliveryQueueUrl = (
        await stack.sqs.send(new GetQueueUrlCommand({ QueueName: queueName(stack.prefix, "delivery") }))
      ).QueueUrl!;
      const record = await completeAndSend({ sqs: stack.sqs, requests, deliveryQueueUrl }, "acme", {
        callbackUrl: hook.url,
      });
      await expect
        .poll(async () => (await requests.get(record.id))?.delivery?.status, {
          timeout: 30_000,
          interval: 200,
        })
        .toBe("delivered");
      expect(hook.calls).toHaveLength(3);
      const last = hook.calls[2]!;
      expect(new Webhook(secret).verify(last.body, last.headers as Record<string, string>)).toMatchObject({
        id: `evt_${record.id}`,
      });
      const resultsUrl = (
        await stack.sqs.send(new GetQueueUrlCommand({ QueueName: resultQueueName(stack.prefix, "acme") }))
      ).QueueUrl!;
      expect((await drain(stack.sqs, resultsUrl)).map((m) => JSON.parse(m.Body!).id)).toEqual([
        `evt_${record.id}`,
      ]);
      const metrics = await (await fetch(`${served.metricsUrl}/metrics`)).text();
      expect(metrics).toMatch(/deepqueue_callback_attempts_total\{outcome="retry"\} 2/);
      expect(metrics).toMatch(/deepqueue_callback_attempts_total\{outcome="delivered"\} 1/);
    } finally {
      await hook.close();
    }
  });
});
