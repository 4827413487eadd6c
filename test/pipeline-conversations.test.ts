import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newRequestId } from "../functions/shared/ids.ts";
import { metricsText } from "../functions/shared/metrics.ts";
import { DynamoUsageStore } from "../functions/shared/stores/usage.ts";
import { countChatTokens } from "../functions/shared/tokenizer.ts";
import { type Pipeline, startPipeline } from "./helpers/pipeline.ts";

let p: Pipeline;

/** How many times a turn was received and sent back to wait (the cache's counter; one process, one registry). */
async function conversationWaits(): Promise<number> {
  const { body } = await metricsText();
  return Number(body.match(/^deepqueue_conversation_waits_total (\d+)/m)?.[1] ?? 0);
}

beforeAll(async () => {
  p = await startPipeline({ cache: { historyTokenBudget: 120 } });
  await p.tenant("acme");
});
afterAll(() => p.stop());

describe("conversations", () => {
  it("keeps turns sent back-to-back in order, each seeing every earlier answer", async () => {
    const conversation_id = "support-1";
    // All three at once: turn 2 and 3 must wait for the turns before them.
    const turns = [];
    for (const content of ["My name is Ada.", "What is my name?", "And what did I ask first?"]) {
      turns.push(
        await p.submit("acme", { conversation_id, messages: [{ role: "user", content }], max_tokens: 12 }),
      );
    }
    const done = await Promise.all(turns.map((t) => p.waitTerminal(t.id, 30_000)));
    expect(done.every((d) => d.status === "completed")).toBe(true);
    // Completion order follows arrival order.
    const completedAt = done.map((d) => Date.parse(d.completed_at!));
    expect([...completedAt].sort((a, b) => a - b)).toEqual(completedAt);

    // The turn is stored right after the record turns completed (and before its result event is sent).
    await expect
      .poll(async () => (await p.conversations.history("acme", conversation_id)).turns.length === 3, {
        timeout: 20_000,
      })
      .toBe(true);
    const history = await p.conversations.history("acme", conversation_id);
    expect(history.turns.map((t) => t.request_id)).toEqual(turns.map((t) => t.id));
    // Turn 2's prompt, as the model counted it, is turn 1 + its answer + turn 2: the context was there.
    const context2 = [
      { role: "user" as const, content: "My name is Ada." },
      { role: "assistant" as const, content: done[0]!.result!.text },
      { role: "user" as const, content: "What is my name?" },
    ];
    expect(done[1]!.result!.usage.prompt_tokens).toBe(countChatTokens(context2));
    expect(done[2]!.result!.usage.prompt_tokens).toBeGreaterThan(done[1]!.result!.usage.prompt_tokens);

    // The history each turn carried is charged to the tenant's daily tokens (this helper submits
    // straight to the queue, so ingest reserved nothing): turn 2 carried turn 1, turn 3 both.
    const [t1, t2] = history.turns;
    const usage = await new DynamoUsageStore(p.stack.ddb, p.stack.prefix).get("acme");
    expect(usage.tokens).toBe(2 * t1!.tokens! + t2!.tokens!);
  });

  it("summarises older turns past the history budget, with the model, and stores the summary", async () => {
    const conversation_id = "long-1";
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const t = await p.submit("acme", {
        conversation_id,
        prompt: `Turn ${i}: here is a fairly long statement about the weather, the sea and the mountains.`,
        max_tokens: 24,
      });
      ids.push(t.id);
    }
    const done = await Promise.all(ids.map((id) => p.waitTerminal(id, 40_000)));
    expect(done.every((d) => d.status === "completed")).toBe(true);
    const conversation = await p.conversations.get("acme", conversation_id);
    expect(conversation?.summary).toBeTruthy();
    // The summary stands for the oldest turns: the view shows only the turns after it.
    expect(conversation!.messages.length).toBeLessThan(10);
    expect(p.sim.stats().calls.some((c) => c.model === "deepseek-chat-small" && c.endpoint === "chat")).toBe(
      true,
    );
    // The last turn's prompt fit the budget (history ≤ 120 tokens + its own turn).
    expect(done[4]!.result!.usage.prompt_tokens).toBeLessThan(120 + 40);
  });

  it("lets a turn wait on a slow predecessor longer than maxReceiveCount receives, without the DLQ", async () => {
    const conversation_id = "slow-1";
    // A predecessor that stays open (its message is somewhere else, slow).
    const now = Date.now();
    const slow = await p.requests.create({
      id: newRequestId(),
      tenant: "acme",
      model: "deepseek-chat",
      prompt: "first, and slow",
      max_tokens: 8,
      temperature: 0.7,
      cache: true,
      conversation_id,
      prompt_tokens: 5,
      created_at: new Date(now).toISOString(),
      deadline_at: new Date(now + 900_000).toISOString(),
    });
    const waitsBefore = await conversationWaits();
    const next = await p.submit("acme", { conversation_id, prompt: "second", max_tokens: 8 });
    // One-second rechecks until the turn was received more often than maxReceiveCount (5) allows one message.
    await expect
      .poll(async () => (await conversationWaits()) - waitsBefore > 5, { timeout: 20_000 })
      .toBe(true);
    expect((await p.requests.get(next.id))?.status).not.toBe("completed");
    const dlq = await p.stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: p.urls.requestsDlq,
        WaitTimeSeconds: 0,
        MaxNumberOfMessages: 10,
      }),
    );
    expect((dlq.Messages ?? []).filter((m) => m.Body?.includes(next.id))).toHaveLength(0);
    // The predecessor ends: the waiting turn goes on.
    await p.requests.fail(slow.id, { code: "model_unavailable", message: "gave up" });
    expect((await p.waitTerminal(next.id, 20_000)).status).toBe("completed");
  });

  it("truncates the history when summarisation fails", async () => {
    p.sim.setConfig({ unavailableModels: ["deepseek-chat-small"] });
    try {
      const conversation_id = "long-2";
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const t = await p.submit("acme", {
          conversation_id,
          prompt: `Point ${i}: another long statement about rivers, forests, cities and their histories.`,
          max_tokens: 24,
        });
        ids.push(t.id);
      }
      const done = await Promise.all(ids.map((id) => p.waitTerminal(id, 40_000)));
      expect(done.every((d) => d.status === "completed")).toBe(true);
      expect((await p.conversations.get("acme", conversation_id))?.summary).toBeUndefined();
      expect(done[4]!.result!.usage.prompt_tokens).toBeLessThan(120 + 40);
    } finally {
      p.sim.setConfig({ unavailableModels: [] });
    }
  });
});
