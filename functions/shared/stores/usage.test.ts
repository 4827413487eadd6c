import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../../test/helpers/emulators.ts";
import { DynamoUsageStore, secondsToUtcDayEnd, utcDay } from "./usage.ts";

/**
 * Days relative to today: the counters expire (in code) 8 days after their day, so a test on a
 * fixed date stops finding what it wrote once that date is a week old.
 */
const today = utcDay(new Date());
const tomorrow = utcDay(new Date(Date.now() + 86_400_000));
const at = (day: string, time: string) => new Date(`${day}T${time}Z`);

describe("daily usage counters in DynamoDB", () => {
  let stack: TestStack;
  let usage: DynamoUsageStore;
  beforeAll(async () => {
    stack = await startTestStack();
    usage = new DynamoUsageStore(stack.ddb, stack.prefix);
  });
  afterAll(() => stack.stop());

  it("counts days in UTC and knows when they end", () => {
    expect(utcDay(new Date("2026-11-26T23:59:59Z"))).toBe("2026-11-26");
    expect(secondsToUtcDayEnd(new Date("2026-11-26T23:59:00Z"))).toBe(60);
    expect(secondsToUtcDayEnd(new Date("2026-11-26T00:00:00Z"))).toBe(86_400);
  });

  it("admits up to the request quota, then refuses without counting; a new UTC day starts over", async () => {
    const limits = { daily_requests: 2, daily_tokens: null };
    const evening = at(today, "23:59:00");
    expect((await usage.reserve("acme", 10, limits, evening)).admitted).toBe(true);
    expect((await usage.reserve("acme", 10, limits, evening)).admitted).toBe(true);
    expect(await usage.reserve("acme", 10, limits, evening)).toEqual({
      admitted: false,
      kind: "requests",
      usage: { requests: 2, tokens: 20 },
      retryAfterSeconds: 60,
    });
    expect((await usage.reserve("acme", 10, limits, at(tomorrow, "00:00:01"))).admitted).toBe(true);
  });

  it("refuses what would pass the token quota, admits what still fits, and gives reservations back", async () => {
    const limits = { daily_requests: null, daily_tokens: 1000 };
    const now = at(today, "12:00:00");
    const first = await usage.reserve("tok", 600, limits, now);
    expect(first.admitted).toBe(true);
    expect(await usage.reserve("tok", 600, limits, now)).toMatchObject({ admitted: false, kind: "tokens" });
    expect((await usage.reserve("tok", 400, limits, now)).admitted).toBe(true);
    expect((await usage.reserve("tok", 1, limits, now)).admitted).toBe(false);
    await usage.release("tok", 400, today);
    expect(await usage.get("tok", today)).toEqual({ requests: 1, tokens: 600 });
    // A single request larger than the whole quota is refused outright.
    expect(await usage.reserve("huge", 5000, limits, now)).toMatchObject({ admitted: false, kind: "tokens" });
  });

  it("concurrent reservations never pass the quota", async () => {
    const limits = { daily_requests: 7, daily_tokens: null };
    const now = at(today, "12:00:00");
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, () => usage.reserve("race", 1, limits, now)),
    );
    expect(outcomes.filter((o) => o.admitted)).toHaveLength(7);
    expect((await usage.get("race", today)).requests).toBe(7);
  });

  it("reserveMany admits a batch in one write when it fits, and exactly the quota when it does not", async () => {
    const limits = { daily_requests: 5, daily_tokens: 100 };
    const now = at(today, "12:00:00");
    const first = await usage.reserveMany("many", [10, 10, 10], limits, now);
    expect(first.every((o) => o.admitted)).toBe(true);
    // 3 counted; 4 more asked, 2 requests of room left: the first two in order are admitted.
    const second = await usage.reserveMany("many", [10, 10, 10, 10], limits, now);
    expect(second.map((o) => o.admitted)).toEqual([true, true, false, false]);
    expect(await usage.get("many", today)).toEqual({ requests: 5, tokens: 50 });
    // Token room: 50 left; 30 + 30 do not fit together, the first alone does.
    const tokensOnly = { daily_requests: null, daily_tokens: 60 };
    const third = await usage.reserveMany("tokmany", [30, 40], tokensOnly, now);
    expect(third.map((o) => o.admitted)).toEqual([true, false]);
  });

  it("counts an unlimited tenant in memory and writes it within the flush interval (or on flush())", async () => {
    const store = new DynamoUsageStore(stack.ddb, stack.prefix, { unlimitedFlushMs: 60_000 });
    const limits = { daily_requests: null, daily_tokens: null };
    const now = new Date();
    expect((await store.reserveMany("free", [5, 7], limits, now)).every((o) => o.admitted)).toBe(true);
    expect((await store.reserve("free", 3, limits, now)).admitted).toBe(true);
    // Not written yet: another replica (store) sees nothing, this one sees its own counts.
    expect(await usage.get("free")).toEqual({ requests: 0, tokens: 0 });
    expect(await store.get("free")).toEqual({ requests: 3, tokens: 15 });
    await store.flush();
    expect(await usage.get("free")).toEqual({ requests: 3, tokens: 15 });
    expect(await store.get("free")).toEqual({ requests: 3, tokens: 15 });
  });

  it("charges tokens after the fact, without a limit check and without counting a request", async () => {
    const noon = at(today, "12:00:00");
    await usage.charge("charged", 500, noon);
    await usage.charge("charged", 0, noon);
    expect(await usage.get("charged", today)).toEqual({ requests: 0, tokens: 500 });
    // What was charged counts against the next reservation.
    expect(
      (await usage.reserve("charged", 600, { daily_requests: null, daily_tokens: 1000 }, noon)).admitted,
    ).toBe(false);
  });
});
