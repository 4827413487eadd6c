import { GetQueueAttributesCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SqsHandler } from "../functions/runtime/sqs-worker.ts";
import { type Pipeline, startPipeline } from "./helpers/pipeline.ts";

let p: Pipeline;

beforeAll(async () => {
  // Workers start per test: each test plays a different crash.
  p = await startPipeline({ start: false, visibilitySeconds: 3 });
  await p.tenant("acme");
});
afterEach(() => p.stopWorkers());
afterAll(() => p.stop());

async function visibleIn(queueUrl: string): Promise<number> {
  const out = await p.stack.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }),
  );
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
}

describe("a killed worker", () => {
  it("leaves its messages to another worker after the visibility timeout: one result each", async () => {
    await p.worker("cache").start();
    const submitted = await Promise.all(
      Array.from({ length: 5 }, (_, i) => p.submit("acme", { prompt: `survive ${i}` })),
    );
    await expect.poll(async () => (await visibleIn(p.urls.inference)) === 5, { timeout: 20_000 }).toBe(true);
    // A batcher received them and died at once: no delete, no heartbeat, no release.
    let taken = 0;
    while (taken < 5) {
      const out = await p.stack.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: p.urls.inference,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 2,
        }),
      );
      taken += out.Messages?.length ?? 0;
    }
    await p.deliveries();
    await p.worker("batcher").start();
    const done = await Promise.all(submitted.map((r) => p.waitTerminal(r.id)));
    expect(done.every((r) => r.result?.source === "model")).toBe(true);
    // The result events follow the terminal write (after the cache entries): poll until all are out.
    const deliveries: Awaited<ReturnType<Pipeline["deliveries"]>> = [];
    await expect
      .poll(async () => {
        deliveries.push(...(await p.deliveries()).filter((d) => submitted.some((r) => r.id === d.subject)));
        return new Set(deliveries.map((d) => d.subject)).size;
      })
      .toBe(5);
    // At least once, and every repeat is the same result event.
    for (const r of done) {
      const mine = deliveries.filter((d) => d.subject === r.id);
      expect(new Set(mine.map((d) => d.data.event.id))).toEqual(new Set([`evt_${r.id}`]));
    }
  });

  it("dying mid-batch after its answers were stored produces no second answer and no second event id", async () => {
    await p.worker("cache").start();
    // The first run of each message does the whole job, then the process "dies" before SQS hears back.
    const died = new Set<string>();
    const redelivered = new Set<string>();
    const dying: SqsHandler = async (event, context) => {
      const response = await p.batcherHandler(event, context);
      const fresh = event.Records.filter((r) => !died.has(r.messageId));
      for (const r of event.Records) if (died.has(r.messageId)) redelivered.add(r.messageId);
      if (fresh.length === 0) return response;
      for (const r of fresh) died.add(r.messageId);
      throw new Error("killed before deleting its messages");
    };
    p.sim.resetStats();
    await p.deliveries();
    await p.worker("batcher", dying).start();
    const submitted = await Promise.all(
      Array.from({ length: 6 }, (_, i) => p.submit("acme", { prompt: `crash mid-batch ${i}` })),
    );
    const done = await Promise.all(submitted.map((r) => p.waitTerminal(r.id)));
    // Every message came back after the visibility timeout and was finished without a model call.
    await expect.poll(() => redelivered.size >= 6, { timeout: 30_000 }).toBe(true);
    await expect.poll(async () => (await visibleIn(p.urls.inference)) === 0, { timeout: 20_000 }).toBe(true);
    expect(p.sim.stats().promptsPerCall.reduce((a, b) => a + b, 0)).toBe(6);
    const deliveries = (await p.deliveries()).filter((d) => submitted.some((r) => r.id === d.subject));
    for (const r of done) {
      const mine = deliveries.filter((d) => d.subject === r.id);
      expect(mine.length).toBeGreaterThanOrEqual(1);
      // Repeats carry the same result event (id and answer): consumers dedupe on the id.
      expect(new Set(mine.map((d) => d.data.event.id)).size).toBe(1);
      expect(new Set(mine.map((d) => d.data.event.data.result?.text))).toEqual(new Set([r.result?.text]));
    }
  });
});
