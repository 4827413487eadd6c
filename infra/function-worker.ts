import { Duration, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import type { PipelineQueue } from "../functions/shared/names.ts";
import { KedaScaler, sqsTrigger } from "./keda-scaler.ts";
import { CONTAINER_SECURITY, componentLabels, POD_SECURITY, selectorLabels } from "./workload-defaults.ts";

/**
 * The SQS workers and the queues each one consumes (docs/api.md#the-flow); KEDA scales a
 * worker on each of its queues. The batcher drains the interactive lane and the batch lane.
 */
export const WORKER_QUEUES = {
  cache: ["requests"],
  batcher: ["inference", "inference-batch"],
  deliver: ["delivery"],
} as const satisfies Record<string, readonly [PipelineQueue, ...PipelineQueue[]]>;
export type WorkerName = keyof typeof WORKER_QUEUES;

/** Port of each worker's /healthz + /metrics server (DEEPQUEUE_WORKER_METRICS_PORT). */
export const WORKER_METRICS_PORT = 9090;
/** Grace period beyond drainSeconds, for the SIGTERM to arrive and the process to exit. */
const GRACE_MARGIN_SECONDS = 15;
/** The workers' writable /tmp (read-only root filesystem). */
const TMP_MI = 256;

export interface FunctionWorkerProps {
  readonly worker: WorkerName;
  /** deepqueue prefix, for labels. */
  readonly prefix: string;
  /** Deployment and ScaledObject name. @default `${prefix}-${worker}` */
  readonly name?: string;
  /** The functions' image, pinned. */
  readonly image: string;
  /** @default kplus.ImagePullPolicy.IF_NOT_PRESENT */
  readonly imagePullPolicy?: kplus.ImagePullPolicy;
  /** Environment (docs/api.md#configuration) for every function. */
  readonly config: kplus.IConfigMap;
  readonly serviceAccount: kplus.IServiceAccount;
  /** URL (or bare name) of the queue this worker consumes; KEDA scales on its depth. */
  readonly queueUrl: string;
  /**
   * Further queues it consumes, by trigger name (the batcher's `inference-batch`): one more
   * trigger each, with the same settings; the HPA follows the trigger asking for most replicas.
   * @default {}
   */
  readonly moreQueueUrls?: Readonly<Record<string, string>>;
  readonly region: string;
  /** TriggerAuthentication for the SQS trigger. */
  readonly triggerAuthName: string;
  /** @default 1 */
  readonly minReplicas?: number;
  /** @default 10 */
  readonly maxReplicas?: number;
  /** Messages per replica. @default 50 */
  readonly queueLength?: number;
  /** @default 0 */
  readonly activationQueueLength?: number;
  /** @default true */
  readonly scaleOnInFlight?: boolean;
  /** Seconds to finish in-flight messages after SIGTERM. @default 30 */
  readonly drainSeconds?: number;
  /** @default 250 */
  readonly cpuMillis?: number;
  /** @default 512 */
  readonly memoryRequestMi?: number;
  /** @default 1024 */
  readonly memoryLimitMi?: number;
  /** Node labels to require. @default - any node */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** Taints to tolerate. @default [] */
  readonly tolerations?: readonly {
    readonly key: string;
    readonly operator: "Exists" | "Equal";
    readonly value?: string;
    readonly effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  }[];
  /** Secret with the model servers' API key, as INFERENCE_API_KEY. @default - none */
  readonly inferenceApiKey?: { readonly secretName: string; readonly key: string };
}

/**
 * One SQS worker (`deepqueue serve <worker>`) as a Deployment, scaled by KEDA
 * on the depth of its own queue, with a /healthz + /metrics port.
 *
 * @example
 * new FunctionWorker(chart, "batcher", { worker: "batcher", prefix: "deepqueue", image, config, serviceAccount,
 *   queueUrl: "deepqueue-inference", region: "us-east-1", triggerAuthName: "deepqueue-aws" });
 */
export class FunctionWorker extends Construct {
  readonly deployment: kplus.Deployment;
  readonly scaler: KedaScaler;
  readonly podLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: FunctionWorkerProps) {
    super(scope, id);
    const name = props.name ?? `${props.prefix}-${props.worker}`;
    const drainSeconds = props.drainSeconds ?? 30;
    const cpuMillis = props.cpuMillis ?? 250;
    const memoryRequestMi = props.memoryRequestMi ?? 512;
    const memoryLimitMi = props.memoryLimitMi ?? 1024;
    this.podLabels = { ...componentLabels(props.prefix, props.worker), "app.kubernetes.io/name": name };

    this.deployment = new kplus.Deployment(this, "deployment", {
      metadata: { name, labels: this.podLabels },
      podMetadata: { labels: this.podLabels },
      // Our own stable labels, not cdk8s's hash of the construct path (selectors are immutable).
      select: false,
      serviceAccount: props.serviceAccount,
      // IRSA mounts its own projected token; the Kubernetes API token is not needed.
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      terminationGracePeriod: Duration.seconds(drainSeconds + GRACE_MARGIN_SECONDS),
    });
    this.deployment.select(kplus.LabelSelector.of({ labels: selectorLabels(this.podLabels) }));
    const container = this.deployment.addContainer({
      name: props.worker,
      image: props.image,
      imagePullPolicy: props.imagePullPolicy ?? kplus.ImagePullPolicy.IF_NOT_PRESENT,
      command: ["deepqueue", "serve", props.worker],
      ports: [{ name: "metrics", number: WORKER_METRICS_PORT }],
      envFrom: [kplus.Env.fromConfigMap(props.config)],
      ...(props.inferenceApiKey
        ? {
            envVariables: {
              INFERENCE_API_KEY: kplus.EnvValue.fromSecretValue({
                secret: kplus.Secret.fromSecretName(
                  this,
                  "inference-api-key",
                  props.inferenceApiKey.secretName,
                ),
                key: props.inferenceApiKey.key,
              }),
            },
          }
        : {}),
      resources: {
        cpu: { request: kplus.Cpu.millis(cpuMillis), limit: kplus.Cpu.millis(cpuMillis * 4) },
        memory: { request: Size.mebibytes(memoryRequestMi), limit: Size.mebibytes(memoryLimitMi) },
        // /tmp, logs and the writable layer; kplus counts ephemeral storage in whole GiB.
        ephemeralStorage: { request: Size.gibibytes(1) },
      },
      securityContext: CONTAINER_SECURITY,
      readiness: kplus.Probe.fromHttpGet("/healthz", {
        port: WORKER_METRICS_PORT,
        periodSeconds: Duration.seconds(10),
        failureThreshold: 3,
      }),
      // /healthz reads DynamoDB: an outage there must mark pods unready, not restart them all.
      // Liveness only asks whether the process still serves its port.
      liveness: kplus.Probe.fromTcpSocket({
        port: WORKER_METRICS_PORT,
        initialDelaySeconds: Duration.seconds(10),
        periodSeconds: Duration.seconds(20),
        failureThreshold: 3,
      }),
    });
    container.mount(
      "/tmp",
      kplus.Volume.fromEmptyDir(this, "tmp", "tmp", { sizeLimit: Size.mebibytes(TMP_MI) }),
    );
    if (props.nodeSelector) {
      this.deployment.scheduling.attract(
        kplus.Node.labeled(
          ...Object.entries(props.nodeSelector).map(([k, v]) => kplus.NodeLabelQuery.is(k, v)),
        ),
      );
    }
    const effects = {
      NoSchedule: kplus.TaintEffect.NO_SCHEDULE,
      PreferNoSchedule: kplus.TaintEffect.PREFER_NO_SCHEDULE,
      NoExecute: kplus.TaintEffect.NO_EXECUTE,
    } as const;
    for (const t of props.tolerations ?? []) {
      const options = { effect: effects[t.effect] };
      this.deployment.scheduling.tolerate(
        kplus.Node.tainted(
          t.operator === "Equal"
            ? kplus.NodeTaintQuery.is(t.key, t.value ?? "", options)
            : kplus.NodeTaintQuery.exists(t.key, options),
        ),
      );
    }

    const minReplicas = props.minReplicas ?? 1;
    this.scaler = new KedaScaler(this, "scaler", {
      target: this.deployment,
      name,
      minReplicas,
      maxReplicas: props.maxReplicas ?? 10,
      pollingIntervalSeconds: 15,
      cooldownSeconds: 300,
      // If SQS cannot be read, keep the pipeline moving rather than freezing at the last count.
      fallback: { replicas: Math.max(minReplicas, 1), failureThreshold: 3 },
      triggers: Object.entries({ queue: props.queueUrl, ...props.moreQueueUrls }).map(
        ([triggerName, queueUrl]) =>
          sqsTrigger({
            name: triggerName,
            queueUrl,
            region: props.region,
            queueLength: props.queueLength ?? 50,
            activationQueueLength: props.activationQueueLength ?? 0,
            scaleOnInFlight: props.scaleOnInFlight ?? true,
            authName: props.triggerAuthName,
          }),
      ),
    });
  }
}
