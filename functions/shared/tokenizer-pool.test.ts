import { afterAll, describe, expect, it } from "vitest";
import { countTokens } from "./tokenizer.ts";
import { TokenizerBusyError, TokenizerPool } from "./tokenizer-pool.ts";

const pool = new TokenizerPool({ offloadChars: 1_000, threads: 1, maxQueue: 2 });
afterAll(() => pool.close());

describe("TokenizerPool", () => {
  it("counts long prompts on a worker thread, with the same result as inline", async () => {
    const prompt = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    const counted = await pool.count({ prompt });
    expect(counted.tokens).toBe(countTokens(prompt) + 1);
    expect(counted.ms).toBeGreaterThan(0);
    const messages = [{ role: "user", content: prompt }];
    const inline = new TokenizerPool({ offloadChars: Number.POSITIVE_INFINITY });
    expect((await pool.count({ messages })).tokens).toBe((await inline.count({ messages })).tokens);
  });

  it("keeps the event loop free while a long prompt is counted", async () => {
    const prompt = Buffer.from(Array.from({ length: 120_000 }, (_, i) => (i * 7919) % 251)).toString(
      "base64",
    );
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await pool.count({ prompt });
    } finally {
      clearInterval(timer);
    }
    // Inline, this count blocks the loop for a second or more: no tick could run.
    expect(ticks).toBeGreaterThan(5);
  });

  it("refuses new long prompts once its queue is full", async () => {
    const prompt = "word ".repeat(20_000);
    const runs = Array.from({ length: 6 }, () => pool.count({ prompt }));
    const settled = await Promise.allSettled(runs);
    const busy = settled.filter((s) => s.status === "rejected" && s.reason instanceof TokenizerBusyError);
    expect(busy.length).toBeGreaterThan(0);
    expect(settled.some((s) => s.status === "fulfilled")).toBe(true);
  });
});
