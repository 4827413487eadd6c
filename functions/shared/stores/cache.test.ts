import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../../test/helpers/emulators.ts";
import { cacheKey, DynamoResponseCache, lastAnswerKey } from "./cache.ts";

let stack: TestStack;
let cache: DynamoResponseCache;

beforeAll(async () => {
  stack = await startTestStack();
  cache = new DynamoResponseCache(stack.ddb, stack.prefix);
});
afterAll(() => stack.stop());

const answer = {
  text: "Lisbon",
  finish_reason: "stop",
  usage: { prompt_tokens: 5, completion_tokens: 1 },
  request_id: "req_1",
  created_at: new Date().toISOString(),
};

describe("cache keys", () => {
  const base = { tenant: "acme", model: "deepseek-chat", max_tokens: 64, temperature: 0 };
  it("ignore formatting noise but not content, parameters, model or tenant", () => {
    const key = cacheKey({ ...base, prompt: "Capital of Portugal?" });
    expect(cacheKey({ ...base, prompt: "  Capital of Portugal?\r\n" })).toBe(key);
    expect(cacheKey({ ...base, prompt: "Capital of Spain?" })).not.toBe(key);
    expect(cacheKey({ ...base, prompt: "Capital of Portugal?", max_tokens: 65 })).not.toBe(key);
    expect(cacheKey({ ...base, prompt: "Capital of Portugal?", temperature: 0.7 })).not.toBe(key);
    expect(cacheKey({ ...base, prompt: "Capital of Portugal?", model: "other" })).not.toBe(key);
    expect(cacheKey({ ...base, prompt: "Capital of Portugal?", tenant: "other" })).not.toBe(key);
    // A prompt and a one-message chat are different requests to the model.
    expect(cacheKey({ ...base, messages: [{ role: "user", content: "Capital of Portugal?" }] })).not.toBe(
      key,
    );
  });

  it("the last-answer key ignores sampling parameters", () => {
    const a = lastAnswerKey({ tenant: "acme", model: "deepseek-chat", prompt: "Hi" });
    expect(lastAnswerKey({ tenant: "acme", model: "deepseek-chat", prompt: " Hi " })).toBe(a);
    expect(lastAnswerKey({ tenant: "acme", model: "deepseek-chat", prompt: "Hello" })).not.toBe(a);
  });
});

describe("DynamoResponseCache", () => {
  it("serves fresh answers, hides expired ones on read, and keeps the last answer past the TTL", async () => {
    await cache.put({ key: "k-fresh", lastKey: "l-1", answer, ttlSeconds: 300 });
    expect(await cache.get("k-fresh")).toEqual(answer);
    await cache.put({ key: "k-stale", lastKey: "l-2", answer, ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    // dynalite has no TTL deletion: expiry is enforced on read.
    expect(await cache.get("k-stale")).toBeUndefined();
    expect(await cache.getLast("l-2")).toEqual(answer);
    expect(await cache.get("never-written")).toBeUndefined();
  });

  it("lets one request claim an in-flight marker, again after it goes stale, and releases only for its holder", async () => {
    expect((await cache.claim("k-m", "req_a", 60)).leader).toBe(true);
    expect(await cache.claim("k-m", "req_b", 60)).toMatchObject({ leader: false, holder: "req_a" });
    expect((await cache.claim("k-m", "req_a", 60)).leader).toBe(true);
    await cache.release("k-m", "req_b");
    expect((await cache.claim("k-m", "req_b", 60)).leader).toBe(false);
    await cache.release("k-m", "req_a");
    expect((await cache.claim("k-m", "req_b", 60)).leader).toBe(true);

    expect((await cache.claim("k-s", "req_a", 1)).leader).toBe(true);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await cache.claim("k-s", "req_c", 1)).leader).toBe(true);
  });
});
