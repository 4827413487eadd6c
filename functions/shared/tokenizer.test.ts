import { describe, expect, it } from "vitest";
import { BOS_TOKENS, countChatTokens, countTokens } from "./tokenizer.ts";

describe("tokenizer", () => {
  it("counts DeepSeek-V3 tokens, not words", () => {
    // Reference ids from the DeepSeek-V3 tokenizer: [19923, 14, 1026, 6397, 344, 33125].
    expect(countTokens("Hello, my dog is cute")).toBe(6);
    expect(countTokens("")).toBe(0);
    // Whitespace splitting would say 1; BPE splits a long rare word.
    expect(countTokens("antidisestablishmentarianism")).toBeGreaterThan(1);
    // CJK text has no spaces but many tokens.
    expect(countTokens("深度求索是一家人工智能公司")).toBeGreaterThan(3);
  });

  it("counts chat messages with the chat template", () => {
    const messages = [
      { role: "system", content: "You are helpful" },
      { role: "user", content: "Hi there" },
    ];
    // BOS + "You are helpful" (3) + <｜User｜> + "Hi there" (2) + <｜Assistant｜>.
    expect(countChatTokens(messages)).toBe(BOS_TOKENS + 3 + 1 + 2 + 1);
    expect(countChatTokens(messages)).toBeGreaterThan(
      countTokens("You are helpful") + countTokens("Hi there"),
    );
    expect(countChatTokens([])).toBe(0);
  });

  it("counts only the text of content parts", () => {
    const parts = countChatTokens([{ role: "user", content: [{ type: "text", text: "Hi there" }] }]);
    expect(parts).toBe(countChatTokens([{ role: "user", content: "Hi there" }]));
  });
});
