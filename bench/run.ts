import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import type { CapacityResult } from "./capacity.ts";
import { BenchError } from "./errors.ts";
import { createHttpClient } from "./load.ts";
import { machineInfo } from "./machine.ts";
import { type PipelineClient, startPipelineClient } from "./pipeline.ts";
import { progress } from "./progress.ts";
import { type BenchReport, renderMarkdown } from "./report.ts";
import { type BenchContext, chartWriter, type Scenario, type ScenarioResult } from "./scenario.ts";
import { batchesScenario } from "./scenarios/batches.ts";
import { batchingScenario } from "./scenarios/batching.ts";
import { cacheScenario } from "./scenarios/cache.ts";
import { capacityScenario } from "./scenarios/capacity.ts";
import { ingestScenario } from "./scenarios/ingest.ts";
import { scaleScenario } from "./scenarios/scale.ts";
import { sourceDesignScenario } from "./scenarios/source-design.ts";
import { stagesScenario } from "./scenarios/stages.ts";
import { streamingScenario } from "./scenarios/streaming.ts";
import { throughputScenario } from "./scenarios/throughput.ts";
import { FULL, QUICK } from "./settings.ts";
import { type BenchStack, FUNCTION_NAMES, REPO_ROOT, startBenchStack } from "./stack.ts";
import { round } from "./stats.ts";

/** The scenarios, in the order of the report. */
export const SCENARIOS: readonly Scenario[] = [
  ingestScenario,
  throughputScenario,
  sourceDesignScenario,
  batchingScenario,
  cacheScenario,
  stagesScenario,
  scaleScenario,
  capacityScenario,
  streamingScenario,
  batchesScenario,
];

/** The order they run in: batching last, because it restarts the batcher with other settings. */
const RUN_ORDER: readonly Scenario[] = [
  ingestScenario,
  throughputScenario,
  sourceDesignScenario,
  cacheScenario,
  stagesScenario,
  scaleScenario,
  streamingScenario,
  batchesScenario,
  batchingScenario,
  // Last: it starts stacks of its own (and may build), while the shared one sits idle.
  capacityScenario,
];

export const DEFAULT_OUT_DIR = join(REPO_ROOT, "bench", "results");

export interface BenchOptions {
  /** The CI-sized run (under two minutes). @default false */
  quick?: boolean;
  /** Where `<timestamp>.json`, `<timestamp>.md` and the SVGs go. @default bench/results */
  outDir?: string;
  /** Also write bench/REPORT.md (the committed reference). @default true for a full run into the default folder */
  reference?: boolean;
  /** A sentence added to the report's caveats (e.g. what else ran on the machine). */
  note?: string;
  /** Run only these scenarios (numbers or ids); never writes bench/REPORT.md. @default every scenario */
  only?: readonly string[];
  /** Progress output. @default process.stderr */
  stderr?: NodeJS.WriteStream;
}

export interface BenchOutcome {
  report: BenchReport;
  jsonPath: string;
  markdownPath: string;
  referencePath?: string;
}

const CAVEATS = [
  "The model is a simulator on the CPU, not a GPU: its latencies follow a vLLM-like model of one A100 serving a 7B model, so ratios between systems are meaningful, absolute numbers are not.",
  "Everything (emulated SQS and DynamoDB, the simulator, four function processes and the load generator) shares this machine's cores, and other work may have been running on it at the same time; compare numbers only within one run.",
  "SQS and DynamoDB are in-process emulators (fauxqs, dynalite): on AWS each hop adds network time they do not have, and their own CPU cost is on this machine.",
];

/**
 * Runs every scenario against a stack of its own and writes the report.
 *
 * @example const { markdownPath } = await runBench({ quick: true, outDir: "/tmp/bench" });
 */
export async function runBench(options: BenchOptions = {}): Promise<BenchOutcome> {
  const settings = options.quick ? QUICK : FULL;
  const outDir = resolve(options.outDir ?? DEFAULT_OUT_DIR);
  const chosen = chooseScenarios(options.only);
  const reference =
    options.reference ?? (!options.quick && !options.only?.length && outDir === DEFAULT_OUT_DIR);
  const stderr = options.stderr ?? process.stderr;
  mkdirSync(outDir, { recursive: true });
  const started = new Date();
  const stamp = started
    .toISOString()
    .replace(/[:.]/g, "-")
    .replace(/-\d{3}Z$/, "Z");
  const machine = machineInfo();
  stderr.write(
    `deepqueue bench (${settings.mode}) on ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}\n`,
  );

  const startBar = progress("starting the stack", 1, stderr);
  const stack = await startBenchStack({ simulator: settings.simulator });
  const http = createHttpClient(512);
  let pipeline: PipelineClient | undefined;
  const results: ScenarioResult[] = [];
  try {
    let ingestUrl: string | undefined;
    if (!stack.functionsUnavailable) {
      startBar.label("functions");
      const reason = await startFunctions(stack);
      if (reason) stack.functionsUnavailable = reason;
      else {
        ingestUrl = stack.functions.get("ingest")!.url;
        pipeline = startPipelineClient({
          http,
          sqs: stack.sqs,
          ingestUrl,
          apiKey: stack.apiKey,
          resultQueueUrl: stack.resultQueueUrl,
        });
      }
    }
    startBar.done(
      stack.functionsUnavailable ? `functions unavailable: ${stack.functionsUnavailable}` : "ready",
    );
    const ctx: BenchContext = {
      stack,
      settings,
      http,
      pipeline,
      ingestUrl,
      chart: chartWriter(outDir, stamp),
      progress: (title, total) => progress(title, total, stderr),
      shared: new Map(),
    };
    const runOne = async (scenario: Scenario) => {
      const t0 = Date.now();
      let result: ScenarioResult;
      try {
        const out = await scenario.run(ctx);
        result = { ...base(scenario), ...out, durationMs: Date.now() - t0 };
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        stderr.write(`\nscenario ${scenario.number} (${scenario.id}) failed: ${message}\n`);
        result = {
          ...base(scenario),
          status: "error",
          reason: `the run failed: ${message.slice(0, 300)}`,
          headline: [],
          tables: [],
          charts: [],
          notes: [],
          data: {},
          durationMs: Date.now() - t0,
        };
      }
      results.push(result);
    };

    for (const scenario of chosen) await runOne(scenario);
    results.sort((a, b) => a.number - b.number);
  } finally {
    await pipeline?.stop();
    http.close();
    await stack.stop();
  }

  const finished = new Date();
  const report: BenchReport = {
    schema: "deepqueue.bench/1",
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: Math.round((finished.getTime() - started.getTime()) / 1000),
    mode: settings.mode,
    machine,
    loadAverageAtEnd: Number(loadavg()[0]!.toFixed(2)),
    simulator: { ...stack.simulator.options },
    settings,
    headline: headlineNumbers(results),
    caveats: options.note ? [...CAVEATS, options.note] : CAVEATS,
    scenarios: results,
  };
  const jsonPath = join(outDir, `${stamp}.json`);
  const markdownPath = join(outDir, `${stamp}.md`);
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(markdownPath, renderMarkdown(report, ""));
  let referencePath: string | undefined;
  if (reference) {
    referencePath = join(outDir, "..", "REPORT.md");
    writeFileSync(referencePath, renderMarkdown(report, "results/"));
  }
  return { report, jsonPath, markdownPath, ...(referencePath ? { referencePath } : {}) };
}

/**
 * The scenarios to run, in run order: all, or those named by number or id.
 *
 * @example chooseScenarios(["10", "capacity"]).map((s) => s.id) // ["batches", "capacity"]
 */
export function chooseScenarios(only: readonly string[] | undefined): readonly Scenario[] {
  if (!only?.length) return RUN_ORDER;
  const unknown = only.filter((name) => !SCENARIOS.some((s) => s.id === name || String(s.number) === name));
  if (unknown.length) {
    const known = SCENARIOS.map((s) => `${s.number} (${s.id})`).join(", ");
    throw new BenchError(`unknown scenario ${unknown.join(", ")}; the scenarios are ${known}`);
  }
  return RUN_ORDER.filter((s) => only.includes(s.id) || only.includes(String(s.number)));
}

function base(s: Scenario) {
  return { id: s.id, number: s.number, title: s.title, question: s.question };
}

/** Starts every function; the reason when one cannot start. */
async function startFunctions(stack: BenchStack): Promise<string | undefined> {
  try {
    await Promise.all(FUNCTION_NAMES.map((n) => stack.startFunction(n)));
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message.slice(0, 300) : String(error);
  }
}

/** The ratios the README quotes, pulled from the scenarios' data. */
function headlineNumbers(results: ScenarioResult[]): BenchReport["headline"] {
  const data = (id: string) => results.find((r) => r.id === id && r.status !== "error")?.data ?? {};
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  const src = data("source-design") as {
    deepqueue?: { throughputRatio?: number; accept?: { p50?: number } };
  };
  const stages = data("stages") as { overheadMs?: number; stagesMedianMs?: { model?: number } };
  const cache = data("cache") as { speedup?: number };
  const capacity = (data("capacity") as { runs?: CapacityResult[] }).runs ?? [];
  const capacityRun = (mode: string, profile: string) =>
    capacity.find((r) => r.mode === mode && r.profile === profile);
  return {
    ingestVsFloor: num(data("ingest").ratio),
    pipelineVsDirectThroughput: num(data("throughput").ratio),
    deepqueueVsSyncGatewayThroughput: num(src.deepqueue?.throughputRatio),
    acceptP50Ms:
      num(src.deepqueue?.accept?.p50) !== undefined ? round(src.deepqueue!.accept!.p50!) : undefined,
    batchingOnVsOff: num(data("batching").ratio),
    cacheHitSpeedup: num(cache.speedup),
    overheadMsAtLowLoad: num(stages.overheadMs),
    modelMsAtLowLoad: num(stages.stagesMedianMs?.model),
    capacitySplitFastRatio: capacityRun("split", "fast")?.ratio,
    capacityDevFastRatio: capacityRun("dev", "fast")?.ratio,
    capacityFunctionsBareSends: capacityRun("split", "fast")?.functionsInBareSends,
    capacityAcceptP99Ms: capacityRun("split", "fast")?.accept.p99Ms,
  };
}
