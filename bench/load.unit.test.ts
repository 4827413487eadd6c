import { describe, expect, it } from "vitest";
import { closedLoop } from "./load.ts";

describe("closedLoop", () => {
  it("keeps `concurrency` users busy until `total` tasks have run", async () => {
    let running = 0;
    let most = 0;
    const run = await closedLoop({
      concurrency: 4,
      total: 20,
      task: async (i) => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 2));
        running -= 1;
        return i;
      },
    });
    expect(run.results.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(most).toBe(4);
  });

  it("with rampMs, starts user k of n at k × rampMs ÷ n instead of all at once", async () => {
    const t0 = performance.now();
    const starts: number[] = [];
    await closedLoop({
      concurrency: 4,
      total: 4,
      rampMs: 200,
      task: async () => {
        starts.push(performance.now() - t0);
        // Long enough that each user runs one task: four starts, one per user.
        await new Promise((resolve) => setTimeout(resolve, 250));
      },
    });
    starts.sort((a, b) => a - b);
    // Users start at 0, 50, 100 and 150 ms (timers fire no earlier than asked).
    expect(starts[0]).toBeLessThan(40);
    for (const [k, at] of starts.entries()) expect(at).toBeGreaterThanOrEqual(k * 50 - 1);
  });
});
