import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../../test/helpers/emulators.ts";
import { countChatTokens } from "../tokenizer.ts";
import { DynamoConversationStore, historyMessages } from "./conversations.ts";

describe("conversations in DynamoDB", () => {
  let stack: TestStack;
  let store: DynamoConversationStore;
  beforeAll(async () => {
    stack = await startTestStack();
    store = new DynamoConversationStore(stack.ddb, stack.prefix);
  });
  afterAll(() => stack.stop());

  const turn = (id: string, question: string, answer: string) => ({
    request_id: id,
    messages: [{ role: "user" as const, content: question }],
    answer,
    created_at: new Date().toISOString(),
  });

  it("keeps turns in request-id order and appends idempotently", async () => {
    expect(await store.appendTurn("acme", "c1", turn("req_02", "second?", "two"))).toBe(true);
    expect(await store.appendTurn("acme", "c1", turn("req_01", "first?", "one"))).toBe(true);
    expect(await store.appendTurn("acme", "c1", turn("req_01", "first?", "ONE (a redelivery)"))).toBe(false);
    const conversation = await store.get("acme", "c1");
    expect(conversation?.messages.map((m) => m.content)).toEqual(["first?", "one", "second?", "two"]);
    expect(conversation?.messages[1]).toEqual({ role: "assistant", content: "one", request_id: "req_01" });
  });

  it("scopes conversations by tenant", async () => {
    expect(await store.get("other", "c1")).toBeUndefined();
  });

  it("a summary stands for the turns it covers, and only moves forward", async () => {
    await store.appendTurn("acme", "c2", turn("req_10", "a?", "A"));
    await store.appendTurn("acme", "c2", turn("req_11", "b?", "B"));
    await store.appendTurn("acme", "c2", turn("req_12", "c?", "C"));
    const now = new Date().toISOString();
    expect(
      await store.setSummary("acme", "c2", {
        summary: "asked a and b",
        covers_through: "req_11",
        created_at: now,
      }),
    ).toBe(true);
    expect(
      await store.setSummary("acme", "c2", { summary: "older", covers_through: "req_10", created_at: now }),
    ).toBe(false);
    const conversation = await store.get("acme", "c2");
    expect(conversation?.summary).toBe("asked a and b");
    expect(conversation?.messages.map((m) => m.content)).toEqual(["c?", "C"]);
    const forModel = historyMessages(await store.history("acme", "c2"));
    expect(forModel[0]).toMatchObject({ role: "system" });
    expect(forModel[0]?.content).toContain("asked a and b");
    expect(forModel.slice(1).map((m) => m.content)).toEqual(["c?", "C"]);
    // The read is bounded by the summary: covered turns are not even returned.
    const history = await store.history("acme", "c2");
    expect(history.turns.map((t) => t.request_id)).toEqual(["req_12"]);
  });

  it("counts each turn's tokens once, when it is appended", async () => {
    await store.appendTurn("acme", "c3", turn("req_20", "How many tokens is this?", "Eleven or so."));
    const [stored] = (await store.history("acme", "c3")).turns;
    expect(stored?.tokens).toBe(
      countChatTokens([
        { role: "user", content: "How many tokens is this?" },
        { role: "assistant", content: "Eleven or so." },
      ]),
    );
  });
});
