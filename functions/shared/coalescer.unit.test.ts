import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { Coalescer } from "./coalescer.ts";

/** A flush that records its batches and waits until released. */
function recorder() {
  const batches: string[][] = [];
  const releases: Array<() => void> = [];
  const flush = async (items: string[]) => {
    batches.push(items);
    await new Promise<void>((resolve) => releases.push(resolve));
    return items.map((item) => (item.startsWith("bad") ? new Error(`refused ${item}`) : `ok ${item}`));
  };
  return { batches, releases, flush };
}

describe("Coalescer", () => {
  it("sends the items submitted together in one flush", async () => {
    const r = recorder();
    const coalescer = new Coalescer<string, string>({ maxBatch: 10, maxConcurrent: 2 }, r.flush);
    const results = ["a", "b", "c", "d"].map((item) => coalescer.submit(item));
    await nextTurn();
    expect(r.batches).toEqual([["a", "b", "c", "d"]]);
    r.releases.shift()!();
    expect(await Promise.all(results)).toEqual(["ok a", "ok b", "ok c", "ok d"]);
  });

  it("gathers items submitted by continuations resumed together (after one awaited write), without waiting a turn", async () => {
    const r = recorder();
    const coalescer = new Coalescer<string, string>({ maxBatch: 10, maxConcurrent: 2 }, r.flush);
    let written!: () => void;
    const write = new Promise<void>((resolve) => {
      written = resolve;
    });
    const results = ["a", "b", "c"].map(async (item) => {
      await write;
      await Promise.resolve(); // a hop of its own, as an effect's code path has
      return coalescer.submit(item);
    });
    written();
    await nextTurn();
    expect(r.batches).toEqual([["a", "b", "c"]]);
    r.releases.shift()!();
    expect(await Promise.all(results)).toEqual(["ok a", "ok b", "ok c"]);
  });

  it("goes out at once at low load, and gathers what arrives while maxConcurrent flushes are in flight", async () => {
    const r = recorder();
    const coalescer = new Coalescer<string, string>({ maxBatch: 3, maxConcurrent: 1 }, r.flush);
    const first = coalescer.submit("a");
    await nextTurn();
    expect(r.batches).toEqual([["a"]]);
    const later = ["b", "c", "d", "e"].map((item) => coalescer.submit(item));
    await nextTurn();
    expect(r.batches).toHaveLength(1);
    r.releases.shift()!();
    await first;
    await nextTurn();
    // maxBatch 3: the four that waited go out as 3 + 1.
    expect(r.batches).toEqual([["a"], ["b", "c", "d"]]);
    r.releases.shift()!();
    await nextTurn();
    expect(r.batches[2]).toEqual(["e"]);
    r.releases.shift()!();
    expect(await Promise.all(later)).toEqual(["ok b", "ok c", "ok d", "ok e"]);
  });

  it("settles each item with its own outcome, and keeps different keys apart", async () => {
    const r = recorder();
    const coalescer = new Coalescer<string, string>(
      { maxBatch: 10, maxConcurrent: 4, key: (item: string) => item.slice(-1) },
      r.flush,
    );
    const results = ["a1", "bad1", "a2"].map((item) => coalescer.submit(item).catch((e: Error) => e.message));
    await nextTurn();
    expect(r.batches).toEqual([["a1", "bad1"], ["a2"]]);
    for (const release of r.releases.splice(0)) release();
    expect(await Promise.all(results)).toEqual(["ok a1", "refused bad1", "ok a2"]);
  });

  it("with a flush in flight, gathers what separate callbacks of one turn submit (requests on separate connections)", async () => {
    const r = recorder();
    const coalescer = new Coalescer<string, string>({ maxBatch: 10, maxConcurrent: 2 }, r.flush);
    const first = coalescer.submit("a");
    await nextTurn();
    expect(r.batches).toEqual([["a"]]);
    // Three requests read in one turn, each in its own callback, while "a" is on its way: one
    // call for the three (a slot is free, but the first of them does not take it alone).
    const later = await new Promise<Array<Promise<string>>>((resolve) => {
      const submitted: Array<Promise<string>> = [];
      for (const item of ["b", "c", "d"]) {
        setImmediate(() => {
          submitted.push(coalescer.submit(item));
          if (submitted.length === 3) resolve(submitted);
        });
      }
    });
    await nextTurn();
    expect(r.batches).toEqual([["a"], ["b", "c", "d"]]);
    for (const release of r.releases.splice(0)) release();
    expect(await Promise.all([first, ...later])).toEqual(["ok a", "ok b", "ok c", "ok d"]);
  });
});
