import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { Semaphore } from "./semaphore.ts";

describe("Semaphore", () => {
  it("never lets more than its size in, counts a batch as its size, and serves waiters in order", async () => {
    const slots = new Semaphore(10);
    const order: string[] = [];
    const releaseBatch = await slots.acquire(8);
    expect(slots.inUse).toBe(8);
    const big = slots.acquire(5).then((release) => {
      order.push("big");
      return release;
    });
    // A single call arriving later waits behind the bigger one (no starvation), though 2 are free.
    const small = slots.acquire(1).then((release) => {
      order.push("small");
      return release;
    });
    await sleep(10);
    expect(order).toEqual([]);
    releaseBatch();
    const releases = await Promise.all([big, small]);
    expect(order).toEqual(["big", "small"]);
    expect(slots.inUse).toBe(6);
    for (const release of releases) release();
    releases[0]!(); // releasing twice changes nothing
    expect(slots.inUse).toBe(0);
    // A request larger than the whole semaphore takes all of it rather than waiting forever.
    const all = await slots.acquire(50);
    expect(slots.inUse).toBe(10);
    all();
  });
});
