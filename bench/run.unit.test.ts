import { describe, expect, it } from "vitest";
import { chooseScenarios, SCENARIOS } from "./run.ts";

describe("deepqueue bench --only", () => {
  it("runs every scenario when none is named", () => {
    expect(new Set(chooseScenarios(undefined).map((s) => s.id))).toEqual(new Set(SCENARIOS.map((s) => s.id)));
  });

  it("takes numbers and ids, in run order", () => {
    const numberOfBatches = String(SCENARIOS.find((s) => s.id === "batches")!.number);
    expect(chooseScenarios(["capacity", numberOfBatches]).map((s) => s.id)).toEqual(["batches", "capacity"]);
  });

  it("refuses an unknown scenario, naming the known ones", () => {
    expect(() => chooseScenarios(["nope"])).toThrow(/unknown scenario nope; the scenarios are 1 \(ingest\)/);
  });
});
