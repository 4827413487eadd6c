import { describe, expect, it } from "vitest";
import {
  createInferenceClient,
  type InferenceClientOptions,
  ModelUnavailableError,
} from "./inference-client.ts";

const messages = [{ role: "user" as const, content: "hi" }];

/** A client whose server always answers `status` (with `headers`), and the delays it backed off. */
function failing(status: number, headers: Record<string, string>, options: Partial<InferenceClientOptions>) {
  const delays: number[] = [];
  let calls = 0;
  const client = createInferenceClient({
    baseUrl: "http://model.test/v1",
    fetch: async () => {
      calls += 1;
      return new Response(JSON.stringify({ error: { message: "busy" } }), { status, headers });
    },
    onRetry: (retry) => delays.push(retry.delayMs),
    ...options,
  });
  return { client, delays, calls: () => calls };
}

describe("the inference client's retry schedule (fake fetch)", () => {
  it("backs off factor × 2^(n-1), capped, jittered to 50–100 %", async () => {
    const high = failing(503, {}, { retries: 4, backoffFactorMs: 1, maxBackoffMs: 4, random: () => 1 });
    await expect(high.client.chat({ model: "m", messages })).rejects.toBeInstanceOf(ModelUnavailableError);
    expect(high.delays).toEqual([1, 2, 4, 4]);
    expect(high.calls()).toBe(5);
    const low = failing(503, {}, { retries: 3, backoffFactorMs: 2, random: () => 0 });
    await low.client.chat({ model: "m", messages }).catch(() => undefined);
    expect(low.delays).toEqual([1, 2, 4]);
  });

  it("waits the server's Retry-After instead, up to maxRetryAfterMs", async () => {
    const polite = failing(429, { "retry-after": "0.003" }, { retries: 2, backoffFactorMs: 1_000 });
    await polite.client.chat({ model: "m", messages }).catch(() => undefined);
    expect(polite.delays).toEqual([3, 3]);
    const greedy = failing(429, { "retry-after": "60" }, { retries: 1, maxRetryAfterMs: 5 });
    await greedy.client.chat({ model: "m", messages }).catch(() => undefined);
    expect(greedy.delays).toEqual([5]);
  });

  it("never retries a permanent error", async () => {
    const refused = failing(400, {}, { retries: 3, backoffFactorMs: 1 });
    await refused.client.chat({ model: "m", messages }).catch(() => undefined);
    expect(refused.delays).toEqual([]);
    expect(refused.calls()).toBe(1);
  });
});
