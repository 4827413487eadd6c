import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { parseDurationMs, registerSim } from "./sim.ts";

describe("deepqueue sim", () => {
  it("reads durations as llm-d-inference-sim writes them, or bare milliseconds", () => {
    expect(parseDurationMs("15ms")).toBe(15);
    expect(parseDurationMs("1.5s")).toBe(1500);
    expect(parseDurationMs("0.1ms")).toBe(0.1);
    expect(parseDurationMs("250us")).toBe(0.25);
    expect(parseDurationMs("20")).toBe(20);
    expect(() => parseDurationMs("fast")).toThrow(/duration/);
  });

  it("refuses a bad flag value with the flag's name", async () => {
    const program = new Command().exitOverride();
    registerSim(program);
    program.commands[0]?.exitOverride().configureOutput({ writeErr: () => {} });
    await expect(
      program.parseAsync(["node", "deepqueue", "sim", "--failure-types", "meteor"]),
    ).rejects.toThrow(/--failure-types: unknown type "meteor"/);
    await expect(program.parseAsync(["node", "deepqueue", "sim", "--failure-rate", "2"])).rejects.toThrow(
      /--failure-rate must be a number in 0..1/,
    );
  });
});
