import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ReplyMessage, replyMessageSchema } from "../../events/index.ts";
import { type Pipeline, startPipeline } from "../../test/helpers/pipeline.ts";

let p: Pipeline;
let replyQueueUrl: string;
/** Reply messages read so far, by request id, in arrival order. */
const received = new Map<string, ReplyMessage[]>();

beforeAll(async () => {
  p = await startPipeline();
  await p.tenant("acme");
  await p.tenant("optin", { cacheOptIn: true });
  const created = await p.stack.sqs.send(
    new CreateQueueCommand({ QueueName: `${p.stack.prefix}-reply-test` }),
  );
  replyQueueUrl = created.QueueUrl!;
});
afterAll(() => p.stop());

/** Reads the reply queue into `received`; returns the messages read. */
async function readReplies(waitSeconds = 1): Promise<number> {
  const out = await p.stack.sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: replyQueueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: waitSeconds,
    }),
  );
  const messages = out.Messages ?? [];
  for (const m of messages) {
    const reply = replyMessageSchema.parse(JSON.parse(m.Body!));
    received.set(reply.request_id, [...(received.get(reply.request_id) ?? []), reply]);
  }
  if (messages.length > 0) {
    await p.stack.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: replyQueueUrl,
        Entries: messages.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }
  return messages.length;
}

/** Polls the reply queue until `id` has its `done`; returns its messages. */
async function repliesUntilDone(id: string): Promise<ReplyMessage[]> {
  await expect
    .poll(
      async () => {
        await readReplies();
        return received.get(id)?.some((m) => m.type === "done") ?? false;
      },
      { timeout: 30_000, interval: 10 },
    )
    .toBe(true);
  return received.get(id)!;
}

function deltas(messages: ReplyMessage[]) {
  return messages.flatMap((m) => (m.type === "delta" ? [m] : [])).sort((a, b) => a.seq - b.seq);
}

function done(messages: ReplyMessage[]) {
  return messages.flatMap((m) => (m.type === "done" ? [m] : []));
}

describe("replies to a waiting caller", () => {
  it("streams a chat and a prompt answer as coalesced deltas, then done with the stored record", async () => {
    const before = p.sim.config();
    // Real-time tokens (25 ms apart): an answer of n tokens takes n × 25 ms, and a delta covers ~100 ms.
    p.sim.setConfig({ timeScale: 1, interTokenLatencyMs: 25, prefillOverheadMs: 5 });
    try {
      const reply = { queue_url: replyQueueUrl, stream: true };
      const submitted = await Promise.all([
        p.submit("acme", {
          messages: [{ role: "user", content: "stream me a chat answer" }],
          max_tokens: 60,
          reply,
        }),
        p.submit("acme", { prompt: "stream me a prompt answer", max_tokens: 60, reply }),
      ]);
      for (const request of submitted) {
        const messages = await repliesUntilDone(request.id);
        const stored = await p.waitTerminal(request.id);
        expect(stored.result?.source).toBe("model");
        const text = stored.result!.text;
        const parts = deltas(messages);
        expect(parts.map((d) => d.seq)).toEqual(parts.map((_, n) => n));
        expect(parts.length).toBeGreaterThanOrEqual(2);
        expect(parts.map((d) => d.text).join("")).toBe(text);
        // Coalesced: well under one message per token (one per ~4 tokens at this pace).
        const tokens = stored.result!.usage.completion_tokens;
        expect(parts.length).toBeLessThanOrEqual(Math.ceil(tokens / 2) + 1);
        const [last] = done(messages);
        expect(done(messages)).toHaveLength(1);
        expect(last!.record).toMatchObject({ id: request.id, status: "completed", result: { text } });
      }
      // The stored result and the result event are the same as for any request.
      const events: Awaited<ReturnType<Pipeline["deliveries"]>> = [];
      await expect
        .poll(async () => {
          events.push(...(await p.deliveries()));
          return submitted.every((r) => events.some((e) => e.subject === r.id));
        })
        .toBe(true);
      for (const request of submitted) {
        const event = events.find((e) => e.subject === request.id);
        expect(event?.data.event.data.result?.text).toBe((await p.requests.get(request.id))?.result?.text);
      }
    } finally {
      const { timeScale, interTokenLatencyMs, prefillOverheadMs } = before;
      p.sim.setConfig({ timeScale, interTokenLatencyMs, prefillOverheadMs });
    }
  });

  it("sends exactly one done, with no deltas, to a request that does not stream", async () => {
    const r = await p.submit("acme", {
      prompt: "answer me whole",
      reply: { queue_url: replyQueueUrl, stream: false },
    });
    const messages = await repliesUntilDone(r.id);
    const stored = await p.waitTerminal(r.id);
    // One more read: nothing else for this request turns up.
    await readReplies();
    expect(received.get(r.id)).toHaveLength(1);
    expect(deltas(messages)).toHaveLength(0);
    expect(done(messages)[0]!.record).toMatchObject({ id: r.id, status: "completed", result: stored.result });
  });

  it("sends done for a cache hit and for a failed request", async () => {
    const prompt = "a prompt answered twice";
    const first = await p.submit("optin", { prompt });
    expect((await p.waitTerminal(first.id)).result?.source).toBe("model");
    const hit = await p.submit("optin", { prompt, reply: { queue_url: replyQueueUrl, stream: true } });
    const hitMessages = await repliesUntilDone(hit.id);
    expect(deltas(hitMessages)).toHaveLength(0);
    expect(done(hitMessages)[0]!.record.result).toMatchObject({ source: "cache" });

    const refused = await p.submit("acme", {
      prompt: "too long to fit",
      max_tokens: 8000,
      reply: { queue_url: replyQueueUrl, stream: true },
    });
    const refusedMessages = await repliesUntilDone(refused.id);
    expect(done(refusedMessages)[0]!.record).toMatchObject({
      status: "failed",
      error: { code: "context_length_exceeded" },
    });
  });
});
