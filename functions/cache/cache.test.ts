import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pipeline, startPipeline } from "../../test/helpers/pipeline.ts";
import { cacheKey } from "../shared/stores/cache.ts";

let p: Pipeline;
/** Long enough that a live leader always answers in time, even on a busy machine. */
const COALESCE_TIMEOUT_SECONDS = 60;

beforeAll(async () => {
  p = await startPipeline({ cache: { coalesceTimeoutSeconds: COALESCE_TIMEOUT_SECONDS } });
  await p.tenant("acme");
  await p.tenant("optin", { cacheOptIn: true });
});
afterAll(() => p.stop());

describe("cache function", () => {
  it("answers a repeated deterministic request from the cache without calling the model", async () => {
    const prompt = "Name three prime numbers.";
    const first = await p.waitTerminal((await p.submit("acme", { prompt, temperature: 0 })).id);
    expect(first.result?.source).toBe("model");
    p.sim.resetStats();
    const second = await p.waitTerminal((await p.submit("acme", { prompt, temperature: 0 })).id);
    expect(second.result).toMatchObject({ source: "cache", text: first.result?.text });
    expect(p.sim.stats().requests).toBe(0);
  });

  it("uses the cache only where documented: temperature 0 or tenant opt-in, and cache not false", async () => {
    const prompt = "Write a haiku about queues.";
    await p.waitTerminal((await p.submit("acme", { prompt, temperature: 0.7 })).id);
    p.sim.resetStats();
    const again = await p.waitTerminal((await p.submit("acme", { prompt, temperature: 0.7 })).id);
    expect(again.result?.source).toBe("model");
    expect(p.sim.stats().requests).toBe(1);

    await p.waitTerminal((await p.submit("acme", { prompt: "cache off", temperature: 0, cache: false })).id);
    p.sim.resetStats();
    const off = await p.waitTerminal(
      (await p.submit("acme", { prompt: "cache off", temperature: 0, cache: false })).id,
    );
    expect(off.result?.source).toBe("model");

    await p.waitTerminal((await p.submit("optin", { prompt, temperature: 0.7 })).id);
    const optedIn = await p.waitTerminal((await p.submit("optin", { prompt, temperature: 0.7 })).id);
    expect(optedIn.result?.source).toBe("cache");
  });

  it("never serves one tenant's cached answer to another", async () => {
    const prompt = "What is the capital of Portugal? (namespacing)";
    const first = await p.waitTerminal((await p.submit("acme", { prompt, temperature: 0 })).id);
    expect(first.result?.source).toBe("model");
    // The same deterministic request from another tenant goes to the model…
    p.sim.resetStats();
    const other = await p.waitTerminal((await p.submit("optin", { prompt, temperature: 0 })).id);
    expect(other.result?.source).toBe("model");
    expect(p.sim.stats().requests).toBe(1);
    // …while each tenant's own repeat is a hit.
    p.sim.resetStats();
    for (const tenant of ["acme", "optin"]) {
      const again = await p.waitTerminal((await p.submit(tenant, { prompt, temperature: 0 })).id);
      expect(again.result?.source, tenant).toBe("cache");
    }
    expect(p.sim.stats().requests).toBe(0);
  });

  it("coalesces 10 identical concurrent requests into one model call", async () => {
    p.sim.resetStats();
    await p.deliveries();
    const prompt = "Explain backpressure in one paragraph.";
    const submitted = await Promise.all(
      Array.from({ length: 10 }, () => p.submit("acme", { prompt, temperature: 0, max_tokens: 64 })),
    );
    const done = await Promise.all(submitted.map((r) => p.waitTerminal(r.id)));
    expect(p.sim.stats().requests).toBe(1);
    expect(new Set(done.map((r) => r.result?.text)).size).toBe(1);
    expect(done.filter((r) => r.result?.source === "model")).toHaveLength(1);
    expect(done.filter((r) => r.result?.source === "cache")).toHaveLength(9);
    const ids = new Set(submitted.map((r) => r.id));
    const deliveries = (await p.deliveries()).filter((d) => ids.has(d.subject));
    expect(new Set(deliveries.map((d) => d.subject)).size).toBe(10);
  });

  it("lets a follower answer itself when its leader died", async () => {
    const prompt = "Is anyone there?";
    const key = cacheKey({ tenant: "acme", model: "deepseek-chat", prompt, max_tokens: 32, temperature: 0 });
    // A leader that claimed the marker almost a coalesce timeout ago and then died: nobody will
    // ever answer or release it. Its follower waits, checks back, and takes over when it goes stale.
    const claimedAt = Date.now() - (COALESCE_TIMEOUT_SECONDS - 3) * 1000;
    await p.stack.ddb.send(
      new PutCommand({
        TableName: p.cache.table,
        Item: {
          pk: `inflight#${key}`,
          holder: "req_dead_leader",
          claimed_at: claimedAt,
          expires_at: Math.floor(claimedAt / 1000) + COALESCE_TIMEOUT_SECONDS,
        },
      }),
    );
    p.sim.resetStats();
    const r = await p.submit("acme", { prompt, temperature: 0 });
    const done = await p.waitTerminal(r.id, 30_000);
    expect(done.result?.source).toBe("model");
    expect(p.sim.stats().requests).toBe(1);
  });

  it("moves poison messages on the requests queue to its DLQ", async () => {
    await p.stack.sqs.send(new SendMessageCommand({ QueueUrl: p.urls.requests, MessageBody: "[]" }));
    const good = await p.submit("acme", { prompt: "still flowing" });
    expect((await p.waitTerminal(good.id)).status).toBe("completed");
    await expect
      .poll(
        async () => {
          const out = await p.stack.sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: p.urls.requestsDlq,
              WaitTimeSeconds: 1,
              MaxNumberOfMessages: 10,
            }),
          );
          return (out.Messages ?? []).some((m) => m.Body === "[]");
        },
        { timeout: 20_000, interval: 50 },
      )
      .toBe(true);
  });
});
