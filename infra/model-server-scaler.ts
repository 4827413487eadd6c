import { Construct } from "constructs";
import { VLLM_METRICS, VLLM_MODEL_LABEL } from "../functions/shared/vllm-metrics.ts";
import { PropsError } from "./errors.ts";
import { KedaScaler, prometheusTrigger, sqsTrigger } from "./keda-scaler.ts";
import type { ModelServer } from "./model-server.ts";
import { withDefaults } from "./workload-defaults.ts";

/** How the GPU replicas scale unless told otherwise (values: `modelServer.scaling`, `minReplicas`, `maxReplicas`). */
export const MODEL_SERVER_SCALER_DEFAULTS = {
  minReplicas: 2,
  maxReplicas: 10,
  queueLengthPerReplica: 32,
  ttftP95Seconds: 0.5,
  waitingRequestsPerReplica: 8,
  pollingIntervalSeconds: 15,
  cooldownSeconds: 1800,
  scaleDownStabilizationSeconds: 600,
  scaleDownPeriodSeconds: 300,
  failureThreshold: 3,
} as const;

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
  /** @default MODEL_SERVER_SCALER_DEFAULTS.minReplicas */
  readonly minReplicas?: number;
  /** @default MODEL_SERVER_SCALER_DEFAULTS.maxReplicas */
  readonly maxReplicas?: number;
  /** Messages on the inference queue (and on the batch lane's) per replica. @default MODEL_SERVER_SCALER_DEFAULTS.queueLengthPerReplica */
  readonly queueLengthPerReplica?: number;
  /** p95 time to first token to hold. @default MODEL_SERVER_SCALER_DEFAULTS.ttftP95Seconds */
  readonly ttftP95Seconds?: number;
  /** vllm:num_requests_waiting per replica. @default MODEL_SERVER_SCALER_DEFAULTS.waitingRequestsPerReplica */
  readonly waitingRequestsPerReplica?: number;
  /** @default MODEL_SERVER_SCALER_DEFAULTS.pollingIntervalSeconds */
  readonly pollingIntervalSeconds?: number;
  /** @default MODEL_SERVER_SCALER_DEFAULTS.cooldownSeconds */
  readonly cooldownSeconds?: number;
  /** @default MODEL_SERVER_SCALER_DEFAULTS.scaleDownStabilizationSeconds */
  readonly scaleDownStabilizationSeconds?: number;
  /** @default MODEL_SERVER_SCALER_DEFAULTS.scaleDownPeriodSeconds */
  readonly scaleDownPeriodSeconds?: number;
  /** @default - minReplicas, at least 1 */
  readonly fallbackReplicas?: number;
  /** @default MODEL_SERVER_SCALER_DEFAULTS.failureThreshold */
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
function ttftQuery(model: string, namespace: string): string {
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
function waitingQuery(model: string, namespace: string): string {
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
    const p = withDefaults(MODEL_SERVER_SCALER_DEFAULTS, props);
    const model = props.server.servedModelName;
    const cooldown = p.cooldownSeconds;
    if (cooldown <= props.server.modelLoadSeconds) {
      throw new PropsError(
        "ModelServerScaler",
        `cooldownSeconds (${cooldown}) must exceed the server's modelLoadSeconds (${props.server.modelLoadSeconds})`,
      );
    }
    const minReplicas = p.minReplicas;
    const queueTrigger = (name: string, queueUrl: string) =>
      sqsTrigger({
        name,
        queueUrl,
        region: props.region,
        queueLength: p.queueLengthPerReplica,
        activationQueueLength: 0,
        scaleOnInFlight: true,
        authName: props.triggerAuthName,
      });
    this.scaler = new KedaScaler(this, "scaler", {
      target: props.server.deployment,
      name: props.server.deployment.name,
      minReplicas,
      maxReplicas: p.maxReplicas,
      pollingIntervalSeconds: p.pollingIntervalSeconds,
      cooldownSeconds: cooldown,
      fallback: {
        replicas: props.fallbackReplicas ?? Math.max(minReplicas, 1),
        failureThreshold: p.failureThreshold,
      },
      behavior: {
        scaleDownStabilizationSeconds: p.scaleDownStabilizationSeconds,
        scaleDownPeriodSeconds: p.scaleDownPeriodSeconds,
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
          threshold: p.ttftP95Seconds,
        }),
        prometheusTrigger({
          name: "requests-waiting",
          serverAddress: props.prometheusUrl,
          query: waitingQuery(model, props.namespace),
          threshold: p.waitingRequestsPerReplica,
        }),
        ...(props.batchQueueUrl ? [queueTrigger("inference-batch-queue", props.batchQueueUrl)] : []),
      ],
    });
  }
}
