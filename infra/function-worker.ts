import { Duration, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import type { PipelineQueue } from "../functions/shared/names.ts";
import { KedaScaler, sqsTrigger } from "./keda-scaler.ts";
import {
  CONTAINER_SECURITY,
  componentLabels,
  POD_SECURITY,
  schedule,
  selectorLabels,
  type Toleration,
  withDefaults,
} from "./workload-defaults.ts";

/**
 * The SQS workers and the queues each one consumes (docs/api.md#the-flow); KEDA scales a
 * worker on each of its queues. The batcher drains the interactive lane and the batch lane; the
 * batch worker (`serve batches`) runs OpenAI-style batches off their small control messages.
 */
export const WORKER_QUEUES = {
  cache: ["requests"],
  batcher: ["inference", "inference-batch"],
  deliver: ["delivery"],
  batches: ["batches"],
} as const satisfies Record<string, readonly [PipelineQueue, ...PipelineQueue[]]>;
export type WorkerName = keyof typeof WORKER_QUEUES;

/** What every worker gets unless told otherwise (values: `functions.<worker>`). */
export const FUNCTION_WORKER_DEFAULTS = {
  minReplicas: 1,
  activationQueueLength: 0,
  scaleOnInFlight: true,
  cpuMillis: 250,
  tolerations: [] as readonly Toleration[],
} as const;

/**
 * Per worker: queue length, drain and memory. Memory comes from the capacity bench's peak RSS
 * (compiled build, under load; bench/REPORT.md scenario 8): the request covers the peak, the
 * limit leaves twice that for bursts of long prompts and answers.
 */
export const WORKER_DEFAULTS = {
  // Peak RSS measured 247 MiB (with the DeepSeek tokenizer, ~186 MiB of it).
  cache: { queueLength: 50, drainSeconds: 30, maxReplicas: 10, memoryRequestMi: 384, memoryLimitMi: 768 },
  // Peak RSS measured 336 MiB with 96 requests in flight.
  batcher: { queueLength: 64, drainSeconds: 120, maxReplicas: 10, memoryRequestMi: 512, memoryLimitMi: 1024 },
  // Peak RSS measured 104 MiB (no tokenizer).
  deliver: { queueLength: 50, drainSeconds: 60, maxReplicas: 10, memoryRequestMi: 192, memoryLimitMi: 384 },
  // Not measured yet: the tokenizer (~186 MiB, as the cache) plus one input file being validated
  // (up to DEEPQUEUE_FILES_MAX_BYTES). Few replicas: each runs one batch step at a time.
  batches: { queueLength: 100, drainSeconds: 60, maxReplicas: 2, memoryRequestMi: 512, memoryLimitMi: 1024 },
} as const satisfies Record<
  WorkerName,
  {
    queueLength: number;
    drainSeconds: number;
    maxReplicas: number;
    memoryRequestMi: number;
    memoryLimitMi: number;
  }
>;

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
  /** @default FUNCTION_WORKER_DEFAULTS.minReplicas */
  readonly minReplicas?: number;
  /** @default WORKER_DEFAULTS[worker].maxReplicas */
  readonly maxReplicas?: number;
  /** Messages per replica. @default WORKER_DEFAULTS[worker].queueLength */
  readonly queueLength?: number;
  /** @default FUNCTION_WORKER_DEFAULTS.activationQueueLength */
  readonly activationQueueLength?: number;
  /** @default FUNCTION_WORKER_DEFAULTS.scaleOnInFlight */
  readonly scaleOnInFlight?: boolean;
  /** Seconds to finish in-flight messages after SIGTERM. @default WORKER_DEFAULTS[worker].drainSeconds */
  readonly drainSeconds?: number;
  /** @default FUNCTION_WORKER_DEFAULTS.cpuMillis */
  readonly cpuMillis?: number;
  /** @default WORKER_DEFAULTS[worker].memoryRequestMi */
  readonly memoryRequestMi?: number;
  /** @default WORKER_DEFAULTS[worker].memoryLimitMi */
  readonly memoryLimitMi?: number;
  /** Node labels to require. @default - any node */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** Taints to tolerate. @default [] */
  readonly tolerations?: readonly Toleration[];
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
/** The props with every default filled in (FUNCTION_WORKER_DEFAULTS, then WORKER_DEFAULTS[worker]). */
type ResolvedProps = FunctionWorkerProps &
  Required<
    Pick<
      FunctionWorkerProps,
      keyof typeof FUNCTION_WORKER_DEFAULTS | keyof (typeof WORKER_DEFAULTS)[WorkerName] | "name"
    >
  >;

export class FunctionWorker extends Construct {
  readonly deployment: kplus.Deployment;
  readonly scaler: KedaScaler;
  readonly podLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: FunctionWorkerProps) {
    super(scope, id);
    const p: ResolvedProps = withDefaults(
      {
        ...FUNCTION_WORKER_DEFAULTS,
        ...WORKER_DEFAULTS[props.worker],
        name: `${props.prefix}-${props.worker}`,
      },
      props,
    );
    this.podLabels = { ...componentLabels(p.prefix, p.worker), "app.kubernetes.io/name": p.name };
    this.deployment = new kplus.Deployment(this, "deployment", {
      metadata: { name: p.name, labels: this.podLabels },
      podMetadata: { labels: this.podLabels },
      // Our own stable labels, not cdk8s's hash of the construct path (selectors are immutable).
      select: false,
      serviceAccount: p.serviceAccount,
      // IRSA mounts its own projected token; the Kubernetes API token is not needed.
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      terminationGracePeriod: Duration.seconds(p.drainSeconds + GRACE_MARGIN_SECONDS),
    });
    this.deployment.select(kplus.LabelSelector.of({ labels: selectorLabels(this.podLabels) }));
    const container = this.deployment.addContainer(this.container(p));
    container.mount(
      "/tmp",
      kplus.Volume.fromEmptyDir(this, "tmp", "tmp", { sizeLimit: Size.mebibytes(TMP_MI) }),
    );
    schedule(this.deployment, p.nodeSelector, p.tolerations);
    this.scaler = this.keda(p);
  }

  /** `deepqueue serve <worker>`, its metrics port, resources and probes. */
  private container(p: ResolvedProps): kplus.ContainerProps {
    return {
      name: p.worker,
      image: p.image,
      imagePullPolicy: p.imagePullPolicy ?? kplus.ImagePullPolicy.IF_NOT_PRESENT,
      command: ["deepqueue", "serve", p.worker],
      ports: [{ name: "metrics", number: WORKER_METRICS_PORT }],
      envFrom: [kplus.Env.fromConfigMap(p.config)],
      ...(p.inferenceApiKey
        ? {
            envVariables: {
              INFERENCE_API_KEY: kplus.EnvValue.fromSecretValue({
                secret: kplus.Secret.fromSecretName(this, "inference-api-key", p.inferenceApiKey.secretName),
                key: p.inferenceApiKey.key,
              }),
            },
          }
        : {}),
      resources: {
        cpu: { request: kplus.Cpu.millis(p.cpuMillis), limit: kplus.Cpu.millis(p.cpuMillis * 4) },
        memory: { request: Size.mebibytes(p.memoryRequestMi), limit: Size.mebibytes(p.memoryLimitMi) },
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
    };
  }

  /** One aws-sqs-queue trigger per queue the worker consumes, with the same settings. */
  private keda(p: ResolvedProps): KedaScaler {
    return new KedaScaler(this, "scaler", {
      target: this.deployment,
      name: p.name,
      minReplicas: p.minReplicas,
      maxReplicas: p.maxReplicas,
      pollingIntervalSeconds: 15,
      cooldownSeconds: 300,
      // If SQS cannot be read, keep the pipeline moving rather than freezing at the last count.
      fallback: { replicas: Math.max(p.minReplicas, 1), failureThreshold: 3 },
      triggers: Object.entries({ queue: p.queueUrl, ...p.moreQueueUrls }).map(([triggerName, queueUrl]) =>
        sqsTrigger({
          name: triggerName,
          queueUrl,
          region: p.region,
          queueLength: p.queueLength,
          activationQueueLength: p.activationQueueLength,
          scaleOnInFlight: p.scaleOnInFlight,
          authName: p.triggerAuthName,
        }),
      ),
    });
  }
}
