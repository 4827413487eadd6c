import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchReport } from "./report.ts";
import { type BenchOutcome, runBench, SCENARIOS } from "./run.ts";

// Runs `bench --quick` end to end against its own stack and checks the report
// is complete — every scenario present with numbers or a stated reason, the
// charts written, the machine recorded — never the numbers themselves.
describe("deepqueue bench --quick", () => {
  let outDir: string;
  let outcome: BenchOutcome;
  let report: BenchReport;

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), "dq-bench-test-"));
    outcome = await runBench({ quick: true, outDir, reference: false });
    report = JSON.parse(readFileSync(outcome.jsonPath, "utf8")) as BenchReport;
  }, 240_000);

  afterAll(() => {
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it("reports every scenario, each with numbers or an explicit reason", () => {
    expect(report.scenarios.map((s) => s.number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(report.scenarios.map((s) => s.id)).toEqual(SCENARIOS.map((s) => s.id));
    for (const s of report.scenarios) {
      if (s.status === "ok") {
        expect(s.headline.length, s.id).toBeGreaterThan(0);
        expect(s.tables.length, s.id).toBeGreaterThan(0);
        expect(
          s.tables.some((t) => t.rows.length > 0),
          s.id,
        ).toBe(true);
      } else {
        expect(s.reason, `${s.id} is ${s.status} without a reason`).toMatch(/\S/);
      }
    }
  });

  it("records the machine and the simulator settings with the result", () => {
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(report.machine.cpuModel).toMatch(/\S/);
    expect(report.machine.memoryGiB).toBeGreaterThan(0);
    expect(report.machine.node).toMatch(/^v\d+/);
    expect(report.mode).toBe("quick");
    expect(report.simulator.timeScale).toBe(0.05);
    expect(report.simulator.maxNumSeqs).toBeGreaterThan(0);
  });

  it("writes the charts it links, as SVG, and a Markdown report naming every scenario", () => {
    const charts = report.scenarios.flatMap((s) => s.charts);
    expect(charts.length).toBeGreaterThanOrEqual(3);
    for (const chart of charts) {
      const svg = readFileSync(join(outDir, chart), "utf8");
      expect(svg.startsWith("<svg"), chart).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>"), chart).toBe(true);
    }
    expect(charts.some((c) => c.endsWith("throughput-vs-concurrency.svg"))).toBe(true);
    expect(charts.some((c) => c.endsWith("latency-cdf.svg"))).toBe(true);
    const markdown = readFileSync(outcome.markdownPath, "utf8");
    for (const s of report.scenarios) expect(markdown).toContain(`## ${s.number}. ${s.title}`);
    for (const chart of charts) expect(markdown).toContain(`](${chart})`);
    expect(markdown).toContain(report.machine.cpuModel);
    expect(existsSync(join(outDir, "..", "REPORT.md")) && outcome.referencePath).toBeFalsy();
  });
});
