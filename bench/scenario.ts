import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HttpClient } from "./load.ts";
import type { PipelineClient } from "./pipeline.ts";
import type { Progress } from "./progress.ts";
import type { BenchSettings } from "./settings.ts";
import type { BenchStack } from "./stack.ts";

/** What every scenario reports: numbers, or an explicit reason why there are none. */
export interface Table {
  title?: string;
  columns: string[];
  rows: Array<Array<string | number>>;
}

export type ScenarioStatus = "ok" | "partial" | "not_available" | "error";

export interface ScenarioResult {
  id: string;
  number: number;
  title: string;
  /** The question the scenario answers, in the report. */
  question: string;
  status: ScenarioStatus;
  /** Why it is `not_available`, `partial` or `error`. */
  reason?: string;
  /** One-line findings, quoted at the top of the report. */
  headline: string[];
  tables: Table[];
  /** SVG file names, relative to the results folder. */
  charts: string[];
  notes: string[];
  /** Raw numbers, for the JSON. */
  data: Record<string, unknown>;
  durationMs: number;
}

export interface BenchContext {
  stack: BenchStack;
  settings: BenchSettings;
  http: HttpClient;
  /** Undefined when the functions are not running (their reason is `stack.functionsUnavailable`). */
  pipeline: PipelineClient | undefined;
  ingestUrl: string | undefined;
  /** Writes an SVG next to the results and returns its file name. */
  chart(name: string, svg: string): string;
  progress(title: string, total: number): Progress;
  /** Numbers one scenario leaves for a later one (the sweep the combined chart draws). */
  shared: Map<string, unknown>;
}

export interface Scenario {
  id: string;
  number: number;
  title: string;
  question: string;
  run(
    ctx: BenchContext,
  ): Promise<Omit<ScenarioResult, "id" | "number" | "title" | "question" | "durationMs">>;
}

/** A result with no numbers and the reason. */
export function notAvailable(reason: string, notes: string[] = []) {
  return {
    status: "not_available" as const,
    reason,
    headline: [`not available: ${reason}`],
    tables: [],
    charts: [],
    notes,
    data: {},
  };
}

/** @example chartWriter("/repo/bench/results", "2026-11-26T10-00-00Z")("stages", svg) // "2026-…-stages.svg" */
export function chartWriter(dir: string, stamp: string): (name: string, svg: string) => string {
  return (name, svg) => {
    const file = `${stamp}-${name}.svg`;
    writeFileSync(join(dir, file), svg);
    return file;
  };
}

/**
 * The i-th prompt of a set. Systems compared side by side get the same set
 * (the simulator's answer length follows the prompt), and every request is
 * sent with temperature 0.7, so none is answered from the cache.
 */
export function promptFor(tag: string, i: number): string {
  return `bench ${tag} #${i}: in one paragraph, explain why an event-driven inference pipeline queues requests.`;
}
