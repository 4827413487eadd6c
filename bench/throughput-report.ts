import type { ThroughputBenchResult } from "./throughput.ts";

/**
 * The throughput bench's result in five lines, for a terminal.
 *
 * @example process.stdout.write(`${throughputSummary(await runThroughputBench())}\n`);
 */
export function throughputSummary(r: ThroughputBenchResult): string {
  const s = r.lowLoad.stages;
  return [
    `direct (best of ${r.direct.byConcurrency.map((c) => c.concurrency).join("/")}): ${r.direct.best.requestsPerSecond} req/s at concurrency ${r.direct.best.concurrency}`,
    `pipeline: ${r.pipeline.requestsPerSecond} req/s (K=${r.pipeline.maxInFlight}, wait ${r.pipeline.batchWaitMs} ms, ${r.pipeline.meanPromptsPerCall} prompts per call)`,
    `ratio ${r.ratio} (goal ≥ 0.9: ${r.goalMet ? "met" : "missed"})`,
    `low load: direct ${r.lowLoad.directMs} ms, pipeline ${r.lowLoad.pipelineMs} ms, added ${r.lowLoad.addedMs} ms`,
    `  cache: queue ${s.cache.queueWaitMs} ms + handler ${s.cache.handlerMs} ms; batcher: queue ${s.batcher.queueWaitMs} ms + handler ${s.batcher.handlerMs} ms (+ model ${s.modelMs} ms); deliver: queue ${s.deliver.queueWaitMs} ms + handler ${s.deliver.handlerMs} ms`,
  ].join("\n");
}
