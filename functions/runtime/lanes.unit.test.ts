import { describe, expect, it } from "vitest";
import { LaneSlots, lowerLaneReceives } from "./lanes.ts";
import { receiveBackoff } from "./sqs-worker.ts";

describe("lane selection", () => {
  it("tries each lane from the top without waiting and long-polls only the last", () => {
    expect(lowerLaneReceives(2, 20)).toEqual([
      { lane: 0, waitSeconds: 0 },
      { lane: 1, waitSeconds: 20 },
    ]);
    expect(lowerLaneReceives(3, 5).map((r) => r.waitSeconds)).toEqual([0, 0, 5]);
  });

  it("lets the lower lanes hold at most concurrency - reservedSlots, counting their receives", () => {
    const slots = new LaneSlots({ concurrency: 3, reservedSlots: 1 });
    expect(slots.lowerSlots).toBe(2);
    slots.started(1);
    expect(slots.lowerMayReceive()).toBe(true);
    slots.lowerReceiving(1);
    // A receive under way may return a batch: it counts against the lower lanes' slots.
    expect(slots.lowerMayReceive()).toBe(false);
    expect(slots.topMayReceive()).toBe(true);
    slots.lowerReceiving(-1);
    slots.started(2);
    expect(slots.lowerMayReceive()).toBe(false);
    // The reserved slot is the top lane's.
    expect(slots.topMayReceive()).toBe(true);
    slots.started(0);
    expect(slots.topMayReceive()).toBe(false);
    slots.finished(1);
    expect(slots.active).toBe(2);
    expect(slots.lowerMayReceive()).toBe(true);
  });

  it("gives the top lane every slot and no lower lane one when all are busy", () => {
    const slots = new LaneSlots({ concurrency: 2, reservedSlots: 1 });
    slots.started(0);
    slots.started(0);
    expect(slots.topMayReceive()).toBe(false);
    expect(slots.lowerMayReceive()).toBe(false);
    slots.finished(0);
    expect(slots.lowerMayReceive()).toBe(true);
  });
});

describe("batch lines yield to interactive work", () => {
  it("hold every unreserved slot alone, shrink to busyLowerSlots while the top lane has work, and grow back after the quiet time", () => {
    let now = 0;
    const slots = new LaneSlots({
      concurrency: 7,
      reservedSlots: 1,
      busyLowerSlots: 1,
      topQuietMs: 5_000,
      now: () => now,
    });
    for (let i = 0; i < 6; i++) {
      expect(slots.lowerMayReceive()).toBe(true);
      slots.started(1);
    }
    expect(slots.lowerMayReceive()).toBe(false);
    // Interactive work arrives: it gets its slot, and batch lines take no new one until they are
    // down to one batch.
    slots.started(0);
    expect(slots.topBusy()).toBe(true);
    for (let i = 0; i < 5; i++) {
      slots.finished(1);
      expect(slots.lowerMayReceive()).toBe(false);
    }
    slots.finished(1);
    expect(slots.lowerMayReceive()).toBe(true);
    slots.started(1);
    // The interactive batch ends: still busy for the quiet time, then the batch lane grows back.
    slots.finished(0);
    now = 4_999;
    expect(slots.lowerMayReceive()).toBe(false);
    now = 5_000;
    expect(slots.topBusy()).toBe(false);
    expect(slots.lowerMayReceive()).toBe(true);
  });
});

describe("receive back-off", () => {
  it("doubles from the initial delay up to the maximum, each delay between half the ceiling and the ceiling", () => {
    for (let run = 0; run < 20; run++) {
      let step = receiveBackoff({ backoffInitialMs: 100, backoffMaxMs: 1000 }).next();
      const delays: number[] = [];
      for (let i = 0; i < 7; i++) {
        delays.push(step.duration);
        step = step.next(undefined);
      }
      const ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
      delays.forEach((delay, i) => {
        expect(delay).toBeGreaterThanOrEqual(ceilings[i]! / 2);
        expect(delay).toBeLessThanOrEqual(ceilings[i]!);
      });
    }
  });
});
