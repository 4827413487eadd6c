import { describe, expect, it } from "vitest";
import { gatedLoad } from "../../test/helpers/gated-load.ts";
import { ReadThroughCache } from "./read-through.ts";

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("ReadThroughCache", () => {
  it("concurrent gets of a missing key share one load; the next get is a hit", async () => {
    const cache = new ReadThroughCache<string>({ max: 10, ttlMs: 1000 });
    const gate = gatedLoad(() => "acme");
    const gets = Array.from({ length: 50 }, () => cache.get("k", gate.load));
    await turn();
    expect(gate.calls()).toBe(1);
    gate.answer();
    expect(new Set(await Promise.all(gets))).toEqual(new Set(["acme"]));
    await cache.get("k", gate.load);
    expect(gate.calls()).toBe(1);
  });

  it("renews ahead once 80 % of the time has passed, answering from the entry meanwhile", async () => {
    let now = 1_000_000;
    let value = "v1";
    const cache = new ReadThroughCache<string>({ max: 10, ttlMs: 1000, now: () => now });
    const gate = gatedLoad(() => value);
    const first = cache.get("k", gate.load);
    gate.answer();
    await first;
    now += 700;
    expect(await cache.get("k", gate.load)).toBe("v1");
    expect(gate.calls()).toBe(1);
    now += 150;
    value = "v2";
    expect(await cache.get("k", gate.load)).toBe("v1");
    expect(await cache.get("k", gate.load)).toBe("v1");
    expect(gate.calls()).toBe(2);
    gate.answer();
    await turn();
    expect(await cache.get("k", gate.load)).toBe("v2");
    // Renewed: a full time again from the renewal (the old entry would have expired by now).
    now += 700;
    expect(await cache.get("k", gate.load)).toBe("v2");
    expect(gate.calls()).toBe(2);
  });

  it("never serves an entry past its time, and keeps nothing when the time is 0", async () => {
    let now = 1_000_000;
    const cache = new ReadThroughCache<string | undefined>({
      max: 10,
      ttlMs: (v) => (v === undefined ? 0 : 1000),
      now: () => now,
    });
    let value: string | undefined = "v1";
    const load = async () => value;
    expect(await cache.get("k", load)).toBe("v1");
    now += 1001;
    value = undefined;
    expect(await cache.get("k", load)).toBeUndefined();
    value = "v3";
    expect(await cache.get("k", load)).toBe("v3");
  });

  it("a failed load rejects every caller that shared it and is not kept; a failed renewal keeps the entry", async () => {
    let now = 1_000_000;
    let fail = true;
    let calls = 0;
    const cache = new ReadThroughCache<string>({ max: 10, ttlMs: 1000, now: () => now });
    const load = async () => {
      calls += 1;
      await turn();
      if (fail) throw new Error("down");
      return "ok";
    };
    const both = await Promise.allSettled([cache.get("k", load), cache.get("k", load)]);
    expect(both.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(calls).toBe(1);
    fail = false;
    expect(await cache.get("k", load)).toBe("ok");
    fail = true;
    now += 900;
    expect(await cache.get("k", load)).toBe("ok");
    await turn();
    await turn();
    expect(cache.peek("k")).toBe("ok");
    expect(calls).toBe(3);
  });
});
