import { Construct } from "constructs";
import { VLLM_METRICS, VLLM_MODEL_LABEL } from "../functions/shared/vllm-metrics.ts";
import { KedaScaler, prometheusTrigger, sqsTrigger } from "./keda-scaler.ts";
import type { ModelServer } from "./model-server.ts";

export interface ModelServerScalerProps {
  readonly server: ModelServer;
  /** Namespace the server runs in (PodMonitor scrapes carry it as the `namespace` label). */
  readonly namespace: string;
  /** URL (or bare name) of `<prefix>-inference`, the queue in front of the GPUs. */
  readonly inferenceQueueUrl: string;
  /** URL (or bare name) of `<prefix>-inference-batch`, the batch lane, also served by the GPUs. @default - none */
  readonly batchQueueUrl?: string;
  readonly region: string;
  readonly triggerAuthName: string;
  readonly prometheusUrl: string;
  /** @default 2 */
  readonly minReplicas?: number;
  /** @default 10 */
  readonly maxReplicas?: number;
  /** Messages on the inference queue (and on the batch lane's) per replica. @default 32 */
  readonly queueLengthPerReplica?: number;
  /** p95 time to first token to hold. @default 0.5 */
  readonly ttftP95Seconds?: number;
  /** vllm:num_requests_waiting per replica. @default 8 */
  readonly waitingRequestsPerReplica?: number;
  /** @default 15 */
  readonly pollingIntervalSeconds?: number;
  /** @default 1800 */
  readonly cooldownSeconds?: number;
  /** @default 600 */
  readonly scaleDownStabilizationSeconds?: number;
  /** @default 300 */
  readonly scaleDownPeriodSeconds?: number;
  /** @default - minReplicas, at least 1 */
  readonly fallbackReplicas?: number;
  /** @default 3 */
  readonly failureThreshold?: number;
}

/** PromQL label matchers for one served model in one namespace. */
function matchers(model: string, namespace: string): string {
  return `{${VLLM_MODEL_LABEL}="${model}",namespace="${namespace}"}`;
}

/**
 * p95 time to first token, multiplied by the number of replicas reporting.
 * KEDA's fallback needs every trigger to be AverageValue, which divides the
 * value by the replica count: multiplying first turns the HPA's rule into
 * replicas × p95 / target, the proportional rule a latency target wants.
 * KEDA treats NaN and ±Inf as errors once ignoreNullValues is off (as here).
 * No requests in the window (NaN) reads 0 — but only while vLLM's gauges are
 * scraped (`0 * sum(running)`): a missing metric stays empty, KEDA reports
 * the trigger failing, and after failureThreshold reads the fallback holds.
 */
export function ttftQuery(model: string, namespace: string): string {
  const m = matchers(model, namespace);
  // clamp_max: a p95 beyond the top bucket is +Inf, which KEDA (ignoreNullValues off) treats as
  // an error; a day is still far above any target, so it scales out instead.
  return (
    `clamp_max(histogram_quantile(0.95, sum by (le) (rate(${VLLM_METRICS.timeToFirstTokenSeconds}_bucket${m}[2m])))` +
    ` * scalar(count(${VLLM_METRICS.numRequestsRunning}${m})), 86400) > 0` +
    ` or 0 * sum(${VLLM_METRICS.numRequestsRunning}${m})`
  );
}

/** Requests queued inside the vLLM servers of one model, summed over replicas; empty when not scraped. */
export function waitingQuery(model: string, namespace: string): string {
  return `sum(${VLLM_METRICS.numRequestsWaiting}${matchers(model, namespace)})`;
}

/**
 * KEDA for the GPU model server: scale on the inference queues' depth, on
 * vLLM's p95 time to first token and on requests waiting inside vLLM; add
 * replicas quickly, remove them one at a time after a long look back (a GPU
 * replica takes minutes to come back), and hold `fallbackReplicas` while a
 * trigger cannot be read.
 *
 * @example
 * new ModelServerScaler(chart, "model-server-scaler", { server, namespace: "deepqueue",
 *   inferenceQueueUrl: "deepqueue-inference", region: "us-east-1", triggerAuthName: "deepqueue-aws",
 *   prometheusUrl: "http://prometheus-operated.monitoring.svc:9090" });
 */
export class ModelServerScaler extends Construct {
  readonly scaler: KedaScaler;

  constructor(scope: Construct, id: string, props: ModelServerScalerProps) {
    super(scope, id);
    const model = props.server.servedModelName;
    const cooldown = props.cooldownSeconds ?? 1800;
    if (cooldown <= props.server.modelLoadSeconds) {
      throw new Error(
        `ModelServerScaler: cooldownSeconds (${cooldown}) must exceed the server's modelLoadSeconds (${props.server.modelLoadSeconds})`,
      );
    }
    const minReplicas = props.minReplicas ?? 2;
    const queueTrigger = (name: string, queueUrl: string) =>
      sqsTrigger({
        name,
        queueUrl,
        region: props.region,
        queueLength: props.queueLengthPerReplica ?? 32,
        activationQueueLength: 0,
        scaleOnInFlight: true,
        authName: props.triggerAuthName,
      });
    this.scaler = new KedaScaler(this, "scaler", {
      target: props.server.deployment,
      name: props.server.deployment.name,
      minReplicas,
      maxReplicas: props.maxReplicas ?? 10,
      pollingIntervalSeconds: props.pollingIntervalSeconds ?? 15,
      cooldownSeconds: cooldown,
      fallback: {
        replicas: props.fallbackReplicas ?? Math.max(minReplicas, 1),
        failureThreshold: props.failureThreshold ?? 3,
      },
      behavior: {
        scaleDownStabilizationSeconds: props.scaleDownStabilizationSeconds ?? 600,
        scaleDownPeriodSeconds: props.scaleDownPeriodSeconds ?? 300,
        scaleDownPods: 1,
        scaleUpPods: 2,
        scaleUpPeriodSeconds: 60,
      },
      triggers: [
        queueTrigger("inference-queue", props.inferenceQueueUrl),
        prometheusTrigger({
          name: "ttft-p95",
          serverAddress: props.prometheusUrl,
          query: ttftQuery(model, props.namespace),
          threshold: props.ttftP95Seconds ?? 0.5,
        }),
        prometheusTrigger({
          name: "requests-waiting",
          serverAddress: props.prometheusUrl,
          query: waitingQuery(model, props.namespace),
          threshold: props.waitingRequestsPerReplica ?? 8,
        }),
        ...(props.batchQueueUrl ? [queueTrigger("inference-batch-queue", props.batchQueueUrl)] : []),
      ],
    });
  }
}
