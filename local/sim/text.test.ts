import { describe, expect, it } from "vitest";
import { countTokens } from "../../functions/shared/tokenizer.ts";
import { generateText, NATURAL_LENGTH, WORDS } from "./text.ts";

describe("generated text", () => {
  it("is a function of (model, prompt, seed)", () => {
    const a = generateText({ model: "m", prompt: "hello", maxTokens: 300 });
    expect(generateText({ model: "m", prompt: "hello", maxTokens: 300 })).toEqual(a);
    expect(generateText({ model: "m", prompt: "hello", seed: 7, temperature: 0.9, maxTokens: 300 })).toEqual(
      generateText({ model: "m", prompt: "hello", seed: 7, temperature: 0.9, maxTokens: 300 }),
    );
    expect(generateText({ model: "m", prompt: "hello!", maxTokens: 300 }).tokens).not.toEqual(a.tokens);
    expect(generateText({ model: "other", prompt: "hello", maxTokens: 300 }).tokens).not.toEqual(a.tokens);
    expect(generateText({ model: "m", prompt: "hello", seed: 1, maxTokens: 300 }).tokens).not.toEqual(
      a.tokens,
    );
  });

  it("varies with temperature > 0 and no seed", () => {
    const texts = new Set(
      Array.from({ length: 5 }, () =>
        generateText({ model: "m", prompt: "hello", temperature: 1, maxTokens: 300 }).tokens.join(""),
      ),
    );
    expect(texts.size).toBeGreaterThan(1);
  });

  it("respects max_tokens: 'length' when cut, 'stop' when it ends by itself", () => {
    const cut = generateText({ model: "m", prompt: "p", maxTokens: 3 });
    expect(cut.tokens).toHaveLength(3);
    expect(cut.finishReason).toBe("length");
    const free = generateText({ model: "m", prompt: "p", maxTokens: 1000 });
    expect(free.finishReason).toBe("stop");
    expect(free.tokens.length).toBeGreaterThanOrEqual(NATURAL_LENGTH.min);
    expect(free.tokens.length).toBeLessThanOrEqual(NATURAL_LENGTH.max);
  });

  it("emits one real DeepSeek token per piece, so usage matches the tokenizer", () => {
    for (const word of WORDS) {
      expect(countTokens(` ${word}`), word).toBe(1);
      expect(countTokens(` ${word[0]!.toUpperCase()}${word.slice(1)}`), word).toBe(1);
    }
    for (let i = 0; i < 40; i++) {
      const { tokens } = generateText({ model: "m", prompt: `prompt ${i}`, maxTokens: 1000 });
      expect(countTokens(tokens.join("")), tokens.join("")).toBe(tokens.length);
    }
  });
});
