/**
 * vLLM's Prometheus metric names: the one source of truth shared by the
 * model-server simulator (local/sim), which exports them, and the KEDA
 * ScaledObjects (infra/), which query them. Names as vLLM's OpenAI server
 * exports them (https://docs.vllm.ai/en/latest/design/metrics.html).
 */
export const VLLM_METRICS = {
  numRequestsRunning: "vllm:num_requests_running",
  numRequestsWaiting: "vllm:num_requests_waiting",
  e2eRequestLatencySeconds: "vllm:e2e_request_latency_seconds",
  timeToFirstTokenSeconds: "vllm:time_to_first_token_seconds",
  interTokenLatencySeconds: "vllm:inter_token_latency_seconds",
  requestQueueTimeSeconds: "vllm:request_queue_time_seconds",
  kvCacheUsagePerc: "vllm:kv_cache_usage_perc",
  promptTokensTotal: "vllm:prompt_tokens_total",
  generationTokensTotal: "vllm:generation_tokens_total",
} as const;

export type VllmMetricName = (typeof VLLM_METRICS)[keyof typeof VLLM_METRICS];

/** vLLM labels every metric with the served model name. */
export const VLLM_MODEL_LABEL = "model_name";
