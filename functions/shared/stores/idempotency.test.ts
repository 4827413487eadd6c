import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../../test/helpers/emulators.ts";
import {
  bodyFingerprint,
  DynamoIdempotencyStore,
  DynamoSeenIds,
  IdempotencyConflictError,
} from "./idempotency.ts";

describe("idempotency keys and seen ids in DynamoDB", () => {
  let stack: TestStack;
  let keys: DynamoIdempotencyStore<{ id: string }>;
  beforeAll(async () => {
    stack = await startTestStack();
    keys = new DynamoIdempotencyStore(stack.ddb, stack.prefix, { ttlSeconds: 86_400, inProgressSeconds: 30 });
  });
  afterAll(() => stack.stop());

  const t0 = new Date("2026-11-26T10:00:00Z");
  const later = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
  const reason = async (work: Promise<unknown>) => {
    const error = await work.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdempotencyConflictError);
    return (error as IdempotencyConflictError).reason;
  };

  it("claims once; in progress → conflict; completed → the stored response; other body → reused", async () => {
    const fp = bodyFingerprint('{"prompt":"a"}');
    expect(await keys.begin("acme", "k1", fp, "req_1", t0)).toEqual({ state: "started" });
    expect(await reason(keys.begin("acme", "k1", fp, "req_2", later(1)))).toBe("in_progress");
    expect(await reason(keys.begin("acme", "k1", bodyFingerprint("{}"), "req_2", later(1)))).toBe("reused");
    await keys.complete("acme", "k1", "req_1", { id: "req_1" });
    expect(await keys.begin("acme", "k1", fp, "req_3", later(2))).toEqual({
      state: "completed",
      response: { id: "req_1" },
      requestId: "req_1",
    });
    // Scoped per tenant.
    expect(await keys.begin("other", "k1", fp, "req_4", later(2))).toEqual({ state: "started" });
  });

  it("an unfinished claim can be taken over after the in-progress window; a key expires after its TTL", async () => {
    const fp = bodyFingerprint("x");
    await keys.begin("acme", "k2", fp, "req_dead", t0);
    expect(await reason(keys.begin("acme", "k2", fp, "req_b", later(29)))).toBe("in_progress");
    expect(await keys.begin("acme", "k2", fp, "req_b", later(31))).toEqual({ state: "started" });
    // The dead claimant cannot complete or free what is no longer its own.
    await expect(keys.complete("acme", "k2", "req_dead", { id: "req_dead" })).rejects.toThrow();
    await keys.abandon("acme", "k2", "req_dead");
    await keys.complete("acme", "k2", "req_b", { id: "req_b" });
    expect((await keys.begin("acme", "k2", fp, "req_c", later(60))).state).toBe("completed");
    expect(await keys.begin("acme", "k2", fp, "req_c", later(86_400 + 60))).toEqual({ state: "started" });
  });

  it("abandon frees a key for the retry", async () => {
    const fp = bodyFingerprint("y");
    await keys.begin("acme", "k3", fp, "req_1", t0);
    await keys.abandon("acme", "k3", "req_1");
    expect(await keys.begin("acme", "k3", fp, "req_2", later(1))).toEqual({ state: "started" });
  });

  it("seen ids: first claim wins until released or expired", async () => {
    const seen = new DynamoSeenIds(stack.ddb, stack.prefix);
    expect(await seen.claim("acme", "msg_1", 600, t0)).toBe(true);
    expect(await seen.claim("acme", "msg_1", 600, later(10))).toBe(false);
    expect(await seen.claim("other", "msg_1", 600, later(10))).toBe(true);
    await seen.release("acme", "msg_1");
    expect(await seen.claim("acme", "msg_1", 600, later(11))).toBe(true);
    expect(await seen.claim("acme", "msg_1", 600, later(700))).toBe(true);
  });
});
