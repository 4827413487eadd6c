import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pipeline, startPipeline } from "../../test/helpers/pipeline.ts";
import { registry } from "../shared/metrics.ts";
import { dlqName, queueName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";

let p: Pipeline;

beforeAll(async () => {
  p = await startPipeline();
  await p.tenant("acme");
});
afterAll(() => p.stop());

async function counterValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const data = await metric.get();
  return data.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("batcher", () => {
  it("sends plain prompts as prompt arrays and stores one answer per request", async () => {
    p.sim.resetStats();
    await p.deliveries();
    const submitted = await Promise.all(
      Array.from({ length: 30 }, (_, i) => p.submit("acme", { prompt: `Tell me about topic number ${i}` })),
    );
    const done = await Promise.all(submitted.map((r) => p.waitTerminal(r.id)));
    expect(done.every((r) => r.status === "completed" && r.result?.source === "model")).toBe(true);
    const stats = p.sim.stats();
    // The model server saw batches: completions calls with more than one prompt.
    expect(stats.chatCalls).toBe(0);
    expect(Math.max(...stats.promptsPerCall)).toBeGreaterThan(1);
    expect(stats.promptsPerCall.reduce((a, b) => a + b, 0)).toBe(30);
    expect(stats.completionCalls).toBeLessThan(30);
    // Each answer is the one its own prompt produced, with usage counted per prompt.
    for (const r of done) expect(r.result?.usage.prompt_tokens).toBeGreaterThan(0);
    // The result events follow the terminal write: poll until all are out, then none twice.
    const ids = new Set(submitted.map((r) => r.id));
    const deliveries: Awaited<ReturnType<Pipeline["deliveries"]>> = [];
    await expect
      .poll(async () => {
        deliveries.push(...(await p.deliveries()).filter((d) => ids.has(d.subject)));
        return new Set(deliveries.map((d) => d.subject)).size;
      })
      .toBe(30);
    expect(deliveries).toHaveLength(30);
  });

  it("sends chat requests as concurrent chat calls", async () => {
    p.sim.resetStats();
    const submitted = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        p.submit("acme", { messages: [{ role: "user", content: `chat number ${i}` }] }),
      ),
    );
    const done = await Promise.all(submitted.map((r) => p.waitTerminal(r.id)));
    expect(done.every((r) => r.result?.source === "model")).toBe(true);
    expect(p.sim.stats().chatCalls).toBe(4);
  });

  it("retries through the queue while the model is away and completes when it is back", async () => {
    const retriesBefore = await counterValue("deepqueue_retries_total");
    p.sim.setConfig({ down: true });
    const submitted = await Promise.all(
      Array.from({ length: 3 }, (_, i) => p.submit("acme", { prompt: `while away ${i}` })),
    );
    await expect
      .poll(async () => (await counterValue("deepqueue_retries_total")) > retriesBefore, { timeout: 20_000 })
      .toBe(true);
    expect((await p.requests.get(submitted[0]!.id))?.status).not.toBe("completed");
    p.sim.setConfig({ down: false });
    const done = await Promise.all(submitted.map((r) => p.waitTerminal(r.id, 40_000)));
    expect(done.map((r) => r.result?.source)).toEqual(["model", "model", "model"]);
  });

  it("fails at once on a permanent model error (context length)", async () => {
    p.sim.resetStats();
    const r = await p.submit("acme", { prompt: "too long to fit", max_tokens: 8000 });
    const done = await p.waitTerminal(r.id);
    expect(done.status).toBe("failed");
    expect(done.error?.code).toBe("context_length_exceeded");
    expect(p.sim.stats().contextLengthErrors).toBe(1);
  });

  it("degrades a request on its last receive before the DLQ instead of losing it", async () => {
    await p.stopWorkers();
    try {
      await p.tenant("lastchance", { degradation: { cache: false, fallback: false } });
      const r = await p.submit("lastchance", { prompt: "attempts keep dying" });
      await p.worker("cache").start();
      // Four receives that died without a trace (no delete, visibility back to 0 at once).
      let receives = 0;
      while (receives < 4) {
        const out = await p.stack.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: p.urls.inference, WaitTimeSeconds: 1, VisibilityTimeout: 0 }),
        );
        receives += out.Messages?.length ?? 0;
      }
      p.sim.resetStats();
      await p.worker("batcher").start();
      const done = await p.waitTerminal(r.id);
      expect(done.result?.source).toBe("static");
      expect(p.sim.stats().requests).toBe(0);
    } finally {
      await p.stopWorkers();
      await p.startWorkers();
    }
  });

  it("moves poison messages to the DLQ without blocking the batch", async () => {
    await p.stack.sqs.send(new SendMessageCommand({ QueueUrl: p.urls.inference, MessageBody: "{not json" }));
    await p.stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: p.urls.inference,
        MessageBody: JSON.stringify({ specversion: "1.0", type: "deepqueue.inference.requested", data: {} }),
      }),
    );
    const good = await p.submit("acme", { prompt: "a good one next to poison" });
    expect((await p.waitTerminal(good.id)).status).toBe("completed");
    const dead: string[] = [];
    await expect
      .poll(
        async () => {
          const out = await p.stack.sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: p.urls.inferenceDlq,
              MaxNumberOfMessages: 10,
              WaitTimeSeconds: 1,
              MessageAttributeNames: ["All"],
            }),
          );
          for (const m of out.Messages ?? [])
            dead.push(m.MessageAttributes?.["deepqueue-error"]?.StringValue ?? "");
          return dead.length >= 2;
        },
        { timeout: 20_000 },
      )
      .toBe(true);
    expect(dead.some((e) => e.includes("not JSON"))).toBe(true);
    expect(dead.some((e) => e.includes("data"))).toBe(true);
  });

  it("sends a poison message of the batch lane to the batch lane's DLQ (the queue it came from)", async () => {
    const urls = new QueueUrls(p.stack.sqs);
    const lane = queueName(p.stack.prefix, "inference-batch");
    const attributes = await p.stack.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: await urls.get(lane), AttributeNames: ["QueueArn"] }),
    );
    const record = {
      messageId: "poison-on-the-batch-lane",
      receiptHandle: "unused",
      body: "{not json",
      attributes: { ApproximateReceiveCount: "1" },
      messageAttributes: {},
      eventSourceARN: attributes.Attributes!.QueueArn!,
    };
    const response = await p.batcherHandler({ Records: [record] } as unknown as SQSEvent, {} as Context);
    expect(response).toEqual({ batchItemFailures: [] });
    const dead = await p.stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: await urls.get(dlqName(lane)),
        WaitTimeSeconds: 1,
        MessageAttributeNames: ["All"],
      }),
    );
    expect(
      dead.Messages?.map((m) => m.MessageAttributes?.["deepqueue-source-message-id"]?.StringValue),
    ).toEqual(["poison-on-the-batch-lane"]);
  });
});

describe("degradation ladder (model gone past the deadline)", () => {
  it("answers from the last cached answer, then the fallback model, then the static reply, else fails", async () => {
    // A first answer while the model serves: it becomes the "last answer" for this prompt.
    await p.tenant("lvl-cache");
    await p.tenant("lvl-fallback", { degradation: { cache: false } });
    await p.tenant("lvl-static", { degradation: { cache: false, fallback: false } });
    await p.tenant("lvl-none", { degradation: { cache: false, fallback: false, static: false } });
    const prompt = "What is the capital of Portugal?";
    const first = await p.waitTerminal((await p.submit("lvl-cache", { prompt })).id);
    expect(first.result?.source).toBe("model");

    // The main model is taken away; the small one keeps serving.
    p.sim.setConfig({ unavailableModels: ["deepseek-chat"] });
    try {
      const soon = () => new Date(Date.now() + 1500).toISOString();
      const [viaCache, viaFallback, viaStatic, none] = await Promise.all([
        p.submit("lvl-cache", { prompt, deadline_at: soon() }),
        p.submit("lvl-fallback", { prompt, deadline_at: soon() }),
        p.submit("lvl-static", { prompt, deadline_at: soon() }),
        p.submit("lvl-none", { prompt, deadline_at: soon() }),
      ]);
      const cached = await p.waitTerminal(viaCache.id);
      expect(cached.result?.source).toBe("cache");
      expect(cached.result?.text).toBe(first.result?.text);
      const fallback = await p.waitTerminal(viaFallback.id);
      expect(fallback.result?.source).toBe("fallback");
      const stat = await p.waitTerminal(viaStatic.id);
      expect(stat.result).toMatchObject({ source: "static", text: "static reply for tests" });
      const failed = await p.waitTerminal(none.id);
      expect(failed.status).toBe("failed");
      expect(["model_unavailable", "deadline_exceeded"]).toContain(failed.error?.code);
      // A fixed message: never the model server's own text or its address.
      expect(["the model server is unavailable", "no answer before the deadline"]).toContain(
        failed.error?.message,
      );

      // Past its deadline on arrival: degraded without a model call.
      p.sim.resetStats();
      const late = await p.submit("lvl-static", {
        prompt: "late",
        deadline_at: new Date(Date.now() - 1000).toISOString(),
      });
      expect((await p.waitTerminal(late.id)).result?.source).toBe("static");
      expect(p.sim.stats().requests).toBe(0);
      const noneLate = await p.submit("lvl-none", {
        prompt: "late",
        deadline_at: new Date(Date.now() - 1000).toISOString(),
      });
      expect((await p.waitTerminal(noneLate.id)).error?.code).toBe("deadline_exceeded");
    } finally {
      p.sim.setConfig({ unavailableModels: [] });
    }
  });
});
