import {
  CreateQueueCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { registry } from "../shared/metrics.ts";
import { queueGauges } from "./queue-gauges.ts";

let stack: TestStack;
let n = 0;

beforeAll(async () => {
  stack = await startTestStack({ bootstrap: false });
});
afterAll(() => stack.stop());

/** A queue and its `-dlq`, as bootstrap makes them. */
async function newQueue(): Promise<{ url: string; name: string; dlq: string }> {
  n += 1;
  const name = `gauge-test-${n}`;
  await stack.sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const out = await stack.sqs.send(new CreateQueueCommand({ QueueName: name }));
  return { url: out.QueueUrl!, name, dlq: `${name}-dlq` };
}

async function send(url: string, count: number): Promise<void> {
  await stack.sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: url,
      Entries: Array.from({ length: count }, (_, i) => ({ Id: String(i), MessageBody: `m${i}` })),
    }),
  );
}

async function value(metric: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = registry.getSingleMetric(metric);
  const values = (await m?.get())?.values ?? [];
  return values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

/** Counts the SQS calls made through it. */
function counting(sqs: SQSClient): { sqs: SQSClient; calls: () => number } {
  let calls = 0;
  const wrapped = new Proxy(sqs, {
    get(target, prop, receiver) {
      if (prop === "send") {
        return (...args: Parameters<SQSClient["send"]>) => {
          calls += 1;
          return target.send(...args);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  return { sqs: wrapped, calls: () => calls };
}

describe("queue gauges (fauxqs)", () => {
  it("reads visible, in-flight and delayed counts of the queue and its DLQ", async () => {
    const q = await newQueue();
    await send(q.url, 3);
    await send(`${q.url}-dlq`, 2);
    await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: q.url, MaxNumberOfMessages: 1 }));
    const gauges = queueGauges({ sqs: stack.sqs, queueUrl: q.url });
    await gauges.poll();
    expect(await value("deepqueue_queue_messages", { queue: q.name, state: "visible" })).toBe(2);
    expect(await value("deepqueue_queue_messages", { queue: q.name, state: "in_flight" })).toBe(1);
    expect(await value("deepqueue_queue_messages", { queue: q.name, state: "delayed" })).toBe(0);
    expect(await value("deepqueue_queue_messages", { queue: q.dlq, state: "visible" })).toBe(2);
  });

  it("reports the age of the oldest message received since the last poll, from SentTimestamp", async () => {
    const q = await newQueue();
    await send(q.url, 2);
    const out = await stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: q.url,
        MaxNumberOfMessages: 10,
        MessageSystemAttributeNames: ["All"],
      }),
    );
    const messages = out.Messages ?? [];
    expect(messages).toHaveLength(2);
    const oldestSent = Math.min(...messages.map((m) => Number(m.Attributes?.SentTimestamp)));
    let clock = oldestSent + 90_000;
    const gauges = queueGauges({ sqs: stack.sqs, queueUrl: q.url, now: () => clock });
    gauges.observe(messages);
    await gauges.poll();
    expect(await value("deepqueue_queue_oldest_message_age_seconds", { queue: q.name })).toBe(90);

    // Nothing visible, nothing received since: 0.
    clock += 30_000;
    await gauges.poll();
    expect(await value("deepqueue_queue_oldest_message_age_seconds", { queue: q.name })).toBe(0);
  });

  it("keeps growing while messages wait and none is received (a stalled queue)", async () => {
    const q = await newQueue();
    let clock = 1_000_000;
    const gauges = queueGauges({ sqs: stack.sqs, queueUrl: q.url, now: () => clock });
    gauges.start();
    gauges.stop();
    await send(q.url, 1);
    clock += 120_000;
    await gauges.poll();
    expect(await value("deepqueue_queue_oldest_message_age_seconds", { queue: q.name })).toBe(120);
    clock += 60_000;
    await gauges.poll();
    expect(await value("deepqueue_queue_oldest_message_age_seconds", { queue: q.name })).toBe(180);
  });

  it("polls on its timer, never per received message", async () => {
    const q = await newQueue();
    const { sqs, calls } = counting(stack.sqs);
    const gauges = queueGauges({ sqs, queueUrl: q.url, intervalMs: 50 });
    for (let i = 0; i < 100; i++) gauges.observe([{ Attributes: { SentTimestamp: String(Date.now()) } }]);
    expect(calls()).toBe(0);

    gauges.start();
    try {
      await send(q.url, 4);
      // The timer picks the new depth up by itself.
      await expect
        .poll(() => value("deepqueue_queue_messages", { queue: q.name, state: "visible" }), {
          timeout: 10_000,
          interval: 20,
        })
        .toBe(4);
    } finally {
      gauges.stop();
    }
    const afterStop = calls();
    expect(afterStop).toBeGreaterThanOrEqual(4); // two calls (queue, DLQ) per poll
    await new Promise((r) => setTimeout(r, 200));
    expect(calls()).toBeLessThanOrEqual(afterStop + 2); // at most one poll already under way
  });

  it("drops the counts of a queue it cannot read, rather than keep stale ones", async () => {
    const q = await newQueue();
    await send(q.url, 1);
    const gauges = queueGauges({ sqs: stack.sqs, queueUrl: q.url });
    await gauges.poll();
    expect(await value("deepqueue_queue_messages", { queue: q.name, state: "visible" })).toBe(1);
    await stack.sqs.send(new DeleteQueueCommand({ QueueUrl: q.url }));
    await gauges.poll();
    expect(await value("deepqueue_queue_messages", { queue: q.name, state: "visible" })).toBeUndefined();
  });
});
