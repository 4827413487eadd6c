import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { VLLM_METRICS, VLLM_MODEL_LABEL } from "../../functions/shared/vllm-metrics.ts";
import type { BatchEngine } from "./latency-model.ts";

/**
 * vLLM's Prometheus metrics, by vLLM's names, in a registry of their own per
 * simulator (vLLM's names carry no `deepqueue_` prefix, and two simulators in
 * one test process must not share counters). Buckets as vLLM's
 * (https://docs.vllm.ai/en/latest/design/metrics.html).
 */
const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
const REQUEST_BUCKETS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];

type Label = typeof VLLM_MODEL_LABEL;

export interface SimMetrics {
  registry: Registry;
  e2eLatency: Histogram<Label>;
  timeToFirstToken: Histogram<Label>;
  interTokenLatency: Histogram<Label>;
  queueTime: Histogram<Label>;
  promptTokens: Counter<Label>;
  generationTokens: Counter<Label>;
  /** Finished requests by `finished_reason` (stop, length, abort), as vLLM counts them. */
  requestSuccess: Counter<Label | "finished_reason">;
}

/** vLLM's gauges, read from the engine at each scrape. */
function engineGauges(registry: Registry, engine: BatchEngine, modelName: string): void {
  const registers = [registry];
  const labelNames = [VLLM_MODEL_LABEL] as const;
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.set({ [VLLM_MODEL_LABEL]: modelName }, read());
      },
    });
  gauge(
    VLLM_METRICS.numRequestsRunning,
    "Number of requests in model execution batches.",
    () => engine.numRunning,
  );
  gauge(
    VLLM_METRICS.numRequestsWaiting,
    "Number of requests waiting to be processed.",
    () => engine.numWaiting,
  );
  gauge(
    VLLM_METRICS.kvCacheUsagePerc,
    "KV-cache usage. 1 means 100 percent usage.",
    () => engine.kvCacheUsage,
  );
}

/**
 * The gauges read the engine at scrape time; `modelName` labels them (vLLM
 * labels with its served model name; the histograms use each request's model).
 *
 * @example
 * const metrics = createSimMetrics(engine, "deepseek-chat");
 * metrics.promptTokens.inc({ model_name: "deepseek-chat" }, 12);
 * await metrics.registry.metrics();
 */
export function createSimMetrics(engine: BatchEngine, modelName: string): SimMetrics {
  const registry = new Registry();
  const registers = [registry];
  const labelNames = [VLLM_MODEL_LABEL] as const;
  engineGauges(registry, engine, modelName);
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name, help, labelNames, buckets, registers });
  return {
    registry,
    e2eLatency: histogram(
      VLLM_METRICS.e2eRequestLatencySeconds,
      "Histogram of e2e request latency in seconds.",
      REQUEST_BUCKETS,
    ),
    timeToFirstToken: histogram(
      VLLM_METRICS.timeToFirstTokenSeconds,
      "Histogram of time to first token in seconds.",
      TTFT_BUCKETS,
    ),
    interTokenLatency: histogram(
      VLLM_METRICS.interTokenLatencySeconds,
      "Histogram of inter-token latency in seconds.",
      ITL_BUCKETS,
    ),
    queueTime: histogram(
      VLLM_METRICS.requestQueueTimeSeconds,
      "Histogram of time spent in WAITING phase for request.",
      REQUEST_BUCKETS,
    ),
    promptTokens: new Counter({
      name: VLLM_METRICS.promptTokensTotal,
      help: "Number of prefill tokens processed.",
      labelNames,
      registers,
    }),
    generationTokens: new Counter({
      name: VLLM_METRICS.generationTokensTotal,
      help: "Number of generation tokens processed.",
      labelNames,
      registers,
    }),
    requestSuccess: new Counter({
      name: "vllm:request_success_total",
      help: "Count of successfully processed requests.",
      labelNames: [VLLM_MODEL_LABEL, "finished_reason"] as const,
      registers,
    }),
  };
}
