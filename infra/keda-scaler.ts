import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import type { IHorizontalPodAutoscalerConfig } from "@kubernetes-models/keda/keda.sh/v1alpha1/HorizontalPodAutoscalerConfig";
import type { IScaleTriggers } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaleTriggers";
import type { ApiObject } from "cdk8s";
import type * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { PropsError } from "./errors.ts";
import { typedApiObject } from "./typed-api-object.ts";

/** One KEDA trigger, as the ScaledObject schema types it. */
export type ScaleTrigger = IScaleTriggers;

/** HPA `behavior` (autoscaling/v2) that KEDA hands to the HPA it manages. */
export interface ScalingBehavior {
  /** Seconds the HPA looks back before scaling down. */
  readonly scaleDownStabilizationSeconds: number;
  /** At most `scaleDownPods` pods removed per this many seconds. */
  readonly scaleDownPeriodSeconds: number;
  /** @default 1 */
  readonly scaleDownPods?: number;
  /** At most this many pods added per `scaleUpPeriodSeconds`. @default 4 */
  readonly scaleUpPods?: number;
  /** @default 60 */
  readonly scaleUpPeriodSeconds?: number;
}

export interface KedaScalerProps {
  /** The Deployment KEDA scales; it stops rendering `replicas` once scaled. */
  readonly target: kplus.Deployment;
  /** Name of the ScaledObject (KEDA names its HPA `keda-hpa-<name>`). */
  readonly name: string;
  readonly triggers: readonly ScaleTrigger[];
  /** @default 0 */
  readonly minReplicas?: number;
  /** @default 10 */
  readonly maxReplicas?: number;
  /** Seconds between trigger checks. @default 30 */
  readonly pollingIntervalSeconds?: number;
  /** Idle seconds before scaling to zero (only matters with minReplicas 0). @default 300 */
  readonly cooldownSeconds?: number;
  /** Seconds after creation before the first scale-to-zero. @default - cooldownSeconds */
  readonly initialCooldownSeconds?: number;
  /** Replicas to hold while a trigger's source keeps failing. @default - no fallback */
  readonly fallback?: { readonly replicas: number; readonly failureThreshold: number };
  /** HPA scaling behaviour. @default - the HPA's own defaults */
  readonly behavior?: ScalingBehavior;
}

/**
 * A KEDA ScaledObject for one Deployment, typed and schema-checked with
 * `@kubernetes-models/keda`. https://keda.sh/docs/latest/reference/scaledobject-spec/
 *
 * @example
 * new KedaScaler(this, "scaler", { target: deployment, name: "deepqueue-cache", minReplicas: 1, maxReplicas: 10,
 *   triggers: [sqsTrigger({ queueUrl: "deepqueue-requests", region: "us-east-1", queueLength: 50, authName: "aws" })] });
 */
export class KedaScaler extends Construct {
  readonly apiObject: ApiObject;
  readonly minReplicas: number;
  readonly maxReplicas: number;

  constructor(scope: Construct, id: string, props: KedaScalerProps) {
    super(scope, id);
    this.minReplicas = props.minReplicas ?? 0;
    this.maxReplicas = props.maxReplicas ?? 10;
    if (this.minReplicas > this.maxReplicas) {
      throw new PropsError(
        `KedaScaler ${props.name}`,
        `minReplicas (${this.minReplicas}) exceeds maxReplicas (${this.maxReplicas})`,
      );
    }
    if (props.triggers.length === 0)
      throw new PropsError(`KedaScaler ${props.name}`, "triggers must not be empty");
    if (props.fallback && props.triggers.some((t) => (t.metricType ?? "AverageValue") !== "AverageValue")) {
      // KEDA's admission webhook refuses fallback with any non-AverageValue trigger.
      throw new PropsError(
        `KedaScaler ${props.name}`,
        "fallback needs every trigger's metricType to be AverageValue",
      );
    }
    const cooldown = props.cooldownSeconds ?? 300;
    props.target.markHasAutoscaler();

    const scaledObject = new ScaledObject({
      metadata: { name: props.name },
      spec: {
        scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: props.target.name },
        minReplicaCount: this.minReplicas,
        maxReplicaCount: this.maxReplicas,
        pollingInterval: props.pollingIntervalSeconds ?? 30,
        cooldownPeriod: cooldown,
        initialCooldownPeriod: props.initialCooldownSeconds ?? cooldown,
        ...(props.fallback ? { fallback: { ...props.fallback } } : {}),
        ...(props.behavior
          ? { advanced: { horizontalPodAutoscalerConfig: { behavior: hpaBehavior(props.behavior) } } }
          : {}),
        triggers: props.triggers.map((t) => ({ ...t, metadata: { ...t.metadata } })),
      },
    });
    this.apiObject = typedApiObject(this, "scaled-object", scaledObject);
  }
}

/** The HPA's `behavior`: scale up by pods at once, down one step at a time after a look back. */
function hpaBehavior(b: ScalingBehavior): IHorizontalPodAutoscalerConfig["behavior"] {
  return {
    scaleDown: {
      stabilizationWindowSeconds: b.scaleDownStabilizationSeconds,
      selectPolicy: "Min",
      policies: [{ type: "Pods", value: b.scaleDownPods ?? 1, periodSeconds: b.scaleDownPeriodSeconds }],
    },
    scaleUp: {
      stabilizationWindowSeconds: 0,
      selectPolicy: "Max",
      policies: [{ type: "Pods", value: b.scaleUpPods ?? 4, periodSeconds: b.scaleUpPeriodSeconds ?? 60 }],
    },
  };
}

export interface SqsTriggerOptions {
  /** Queue URL, or the bare queue name when unambiguous. */
  readonly queueUrl: string;
  readonly region: string;
  /** Messages per replica KEDA aims for. */
  readonly queueLength: number;
  /** Messages needed to wake from zero. @default 0 */
  readonly activationQueueLength?: number;
  /** Count received-but-not-deleted messages as load. @default true */
  readonly scaleOnInFlight?: boolean;
  /** TriggerAuthentication to use. */
  readonly authName: string;
  /** Trigger name, shown in KEDA's metrics. @default "queue" */
  readonly name?: string;
}

/**
 * An `aws-sqs-queue` trigger: replicas = ceil(messages / queueLength).
 * https://keda.sh/docs/latest/scalers/aws-sqs/
 *
 * @example
 * sqsTrigger({ queueUrl: "deepqueue-requests", region: "us-east-1", queueLength: 50, authName: "deepqueue-aws" })
 */
export function sqsTrigger(o: SqsTriggerOptions): ScaleTrigger {
  return {
    type: "aws-sqs-queue",
    name: o.name ?? "queue",
    metricType: "AverageValue",
    authenticationRef: { name: o.authName },
    metadata: {
      queueURL: o.queueUrl,
      awsRegion: o.region,
      queueLength: String(o.queueLength),
      activationQueueLength: String(o.activationQueueLength ?? 0),
      scaleOnInFlight: String(o.scaleOnInFlight ?? true),
    },
  };
}

export interface PrometheusTriggerOptions {
  readonly name: string;
  readonly serverAddress: string;
  /** PromQL returning a single value. */
  readonly query: string;
  /** Target value per replica (AverageValue: replicas = ceil(value / threshold)). */
  readonly threshold: number;
  /** Value needed to wake from zero. @default 0 */
  readonly activationThreshold?: number;
}

/**
 * A `prometheus` trigger. With AverageValue, KEDA divides the query's value
 * by the replica count before comparing it with `threshold`.
 * https://keda.sh/docs/latest/scalers/prometheus/
 *
 * @example
 * prometheusTrigger({ name: "waiting", serverAddress: "http://prometheus:9090", query: "sum(vllm:num_requests_waiting)", threshold: 8 })
 */
export function prometheusTrigger(o: PrometheusTriggerOptions): ScaleTrigger {
  return {
    type: "prometheus",
    name: o.name,
    metricType: "AverageValue",
    metadata: {
      serverAddress: o.serverAddress,
      query: o.query,
      threshold: String(o.threshold),
      activationThreshold: String(o.activationThreshold ?? 0),
      // An empty result is an error, not 0: a metric that is not scraped must not read as "no load"
      // (the queries return 0 themselves when the server is scraped but idle).
      ignoreNullValues: "false",
    },
  };
}
