import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { DeepqueueError } from "../functions/shared/errors.ts";
import { DEFAULT_PREFIX, PREFIX_PATTERN } from "../functions/shared/names.ts";
import { DTYPES, GPUS, type GpuType, MODELS, type ModelId, sizingProblem } from "./catalogue.ts";
import { dashboardValuesSchema } from "./dashboard.ts";
import { FUNCTION_WORKER_DEFAULTS, WORKER_DEFAULTS, type WorkerName } from "./function-worker.ts";
import { INGEST_SERVICE_DEFAULTS } from "./ingest-service.ts";
import { MODEL_CACHE_DEFAULTS, MODEL_SERVER_DEFAULTS } from "./model-server.ts";
import { MODEL_SERVER_SCALER_DEFAULTS } from "./model-server-scaler.ts";

/**
 * The one configuration a platform team edits: a YAML (or JSON) values file
 * given to `deepqueue synth --config values.yaml`. Every field has a default
 * and a doc line; unknown keys are refused, so a typo fails loudly. With no
 * file at all, the defaults are the `default` profile: the 7B R1 distill on
 * one A100 80 GB, 2 to 10 replicas. Example files for each shipped profile
 * live in `infra/profiles/`.
 */

const MODEL_IDS = Object.keys(MODELS) as [ModelId, ...ModelId[]];
const GPU_TYPES = Object.keys(GPUS) as [GpuType, ...GpuType[]];
const DTYPE_NAMES = Object.keys(DTYPES) as [keyof typeof DTYPES, ...(keyof typeof DTYPES)[]];

/** Kubernetes object names: DNS-1123 labels. */
const K8S_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IAM_ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/;

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const digest = z.string().regex(DIGEST, "a digest: sha256: and 64 hex digits");
const labelMap = z.record(z.string().min(1), z.string());

const roleArn = z
  .string()
  .regex(IAM_ROLE_ARN, "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)");

const tolerationSchema = z.strictObject({
  key: z.string().min(1).describe("taint key"),
  operator: z.enum(["Exists", "Equal"]).default("Exists").describe("Exists, or Equal with value"),
  value: z.string().optional().describe("taint value, with operator Equal"),
  effect: z
    .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
    .default("NoSchedule")
    .describe("taint effect tolerated"),
});

const modelCacheSchema = z
  .strictObject({
    type: z
      .enum(["pvc", "emptyDir"])
      .default(MODEL_CACHE_DEFAULTS.type)
      .describe(
        "pvc: a claim that outlives pods, so a restart does not download the weights again; emptyDir: per pod",
      ),
    existingClaim: z
      .string()
      .regex(K8S_NAME)
      .optional()
      .describe("use this PersistentVolumeClaim instead of making one"),
    storageClass: z
      .string()
      .min(1)
      .default(MODEL_CACHE_DEFAULTS.storageClass)
      .describe(
        "storage class of the claim made; it must offer accessMode (EKS's default class is EBS, ReadWriteOnce only; efs-sc is the EFS CSI driver's usual name)",
      ),
    accessMode: z
      .enum(["ReadWriteMany", "ReadWriteOnce"])
      .default(MODEL_CACHE_DEFAULTS.accessMode)
      .describe(
        "ReadWriteMany (EFS, FSx) lets every replica share one cache; ReadWriteOnce only suits one replica",
      ),
    sizeGi: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("claim size in GiB; default: the checkpoint's size × 1.2 + 10"),
  })
  .prefault({});

/** What every model server has, the main one and the fallback. */
const modelServerBase = {
  model: z
    .enum(MODEL_IDS)
    .default("deepseek-r1-distill-qwen-7b")
    .describe("catalogue id of the DeepSeek model to serve (see docs/kubernetes.md)"),
  servedModelName: z
    .string()
    .min(1)
    .optional()
    .describe("name clients send as `model` (vLLM --served-model-name); default: the catalogue's name"),
  gpu: z.enum(GPU_TYPES).default("A100-80GB").describe("GPU type each replica is scheduled onto"),
  tensorParallelSize: z
    .number()
    .int()
    .default(MODEL_SERVER_DEFAULTS.tensorParallelSize)
    .describe("GPUs per replica (vLLM --tensor-parallel-size): 1, 2, 4 or 8"),
  dtype: z
    .enum(DTYPE_NAMES)
    .default(MODEL_SERVER_DEFAULTS.dtype)
    .describe("weight precision: float16, bfloat16 or fp8"),
  maxModelLen: z
    .number()
    .int()
    .min(256)
    .default(MODEL_SERVER_DEFAULTS.maxModelLen)
    .describe("context window in tokens (vLLM --max-model-len)"),
  gpuMemoryUtilization: z
    .number()
    .min(0.5)
    .max(0.98)
    .default(MODEL_SERVER_DEFAULTS.gpuMemoryUtilization)
    .describe("share of each GPU's memory vLLM may use (vLLM --gpu-memory-utilization)"),
  kvCacheSequences: z
    .number()
    .int()
    .min(1)
    .default(MODEL_SERVER_DEFAULTS.kvCacheSequences)
    .describe("full-length sequences the KV cache must hold at once for the model to count as fitting"),
  image: z
    .string()
    .min(1)
    .default(MODEL_SERVER_DEFAULTS.image)
    .describe("vLLM OpenAI server image, pinned (v0.29.0 or later: --shutdown-timeout)"),
  imageDigest: digest.optional().describe("sha256 digest of that image, pulled as image@digest"),
  revision: z
    .string()
    .min(1)
    .default(MODEL_SERVER_DEFAULTS.revision)
    .describe("Hugging Face revision of the weights (pin a commit hash); downloaded once, served offline"),
  shutdownTimeoutSeconds: z
    .number()
    .int()
    .min(0)
    .default(MODEL_SERVER_DEFAULTS.shutdownTimeoutSeconds)
    .describe(
      "vLLM --shutdown-timeout: how long in-flight generations may finish after SIGTERM; size it to the longest generation",
    ),
  preStopSeconds: z
    .number()
    .int()
    .min(0)
    .max(120)
    .default(MODEL_SERVER_DEFAULTS.preStopSeconds)
    .describe("sleep before SIGTERM, so Services stop routing to a terminating replica first"),
  rolloutMaxSurge: z
    .number()
    .int()
    .min(0)
    .max(1)
    .default(MODEL_SERVER_DEFAULTS.rolloutMaxSurge)
    .describe(
      "1: a rollout adds a replica before removing one (needs a spare node of these GPUs); 0: replaces one at a time",
    ),
  extraArgs: z
    .array(z.string())
    .default([...MODEL_SERVER_DEFAULTS.extraArgs])
    .describe("more vLLM server flags, appended as given"),
  modelLoadSeconds: z
    .number()
    .int()
    .min(60)
    .default(MODEL_SERVER_DEFAULTS.modelLoadSeconds)
    .describe("how long a replica may take to download and load the model before its startup probe fails"),
  cpuPerGpu: z
    .number()
    .positive()
    .default(MODEL_SERVER_DEFAULTS.cpuPerGpu)
    .describe("CPU cores requested per GPU"),
  memoryGiPerGpu: z
    .number()
    .positive()
    .default(MODEL_SERVER_DEFAULTS.memoryGiPerGpu)
    .describe("host memory (GiB) requested per GPU, /dev/shm aside"),
  shmSizeGi: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("size of /dev/shm (GiB, memory-backed) for NCCL and PyTorch; default: 2 + 4 per extra GPU"),
  cache: modelCacheSchema.describe("where downloaded weights live (HF_HOME)"),
  hfTokenSecret: z
    .strictObject({
      name: z
        .string()
        .regex(K8S_NAME)
        .default(MODEL_SERVER_DEFAULTS.hfTokenSecret.name)
        .describe("Secret holding a Hugging Face token"),
      key: z
        .string()
        .min(1)
        .default(MODEL_SERVER_DEFAULTS.hfTokenSecret.key)
        .describe("key inside that Secret"),
    })
    .prefault({})
    .describe("Hugging Face token (optional: the Secret may be absent for public models)"),
  nodeSelector: z
    .record(z.string(), z.string())
    .optional()
    .describe("node labels to require instead of nvidia.com/gpu.product for the chosen GPU"),
  tolerations: z
    .array(tolerationSchema)
    .default(MODEL_SERVER_DEFAULTS.tolerations.map((t) => ({ ...t })))
    .describe("taints of GPU nodes to tolerate"),
};

const modelScalingSchema = z
  .strictObject({
    queueLengthPerReplica: z
      .number()
      .int()
      .min(1)
      .default(MODEL_SERVER_SCALER_DEFAULTS.queueLengthPerReplica)
      .describe(
        "messages waiting on <prefix>-inference (and, apart, on the batch lane <prefix>-inference-batch) that one replica is expected to absorb",
      ),
    ttftP95Seconds: z
      .number()
      .positive()
      .default(MODEL_SERVER_SCALER_DEFAULTS.ttftP95Seconds)
      .describe("p95 time to first token above which replicas are added (the source design's 500 ms)"),
    waitingRequestsPerReplica: z
      .number()
      .int()
      .min(1)
      .default(MODEL_SERVER_SCALER_DEFAULTS.waitingRequestsPerReplica)
      .describe("requests queued inside vLLM (vllm:num_requests_waiting) per replica before scaling out"),
    pollingIntervalSeconds: z
      .number()
      .int()
      .min(5)
      .default(MODEL_SERVER_SCALER_DEFAULTS.pollingIntervalSeconds)
      .describe("how often KEDA checks the triggers"),
    cooldownSeconds: z
      .number()
      .int()
      .min(60)
      .default(MODEL_SERVER_SCALER_DEFAULTS.cooldownSeconds)
      .describe("idle time before scaling to minReplicas when that is 0; must exceed modelLoadSeconds"),
    scaleDownStabilizationSeconds: z
      .number()
      .int()
      .min(0)
      .max(3600, "the HPA API allows at most 3600 s")
      .default(MODEL_SERVER_SCALER_DEFAULTS.scaleDownStabilizationSeconds)
      .describe("HPA looks back this long before removing a GPU replica"),
    scaleDownPeriodSeconds: z
      .number()
      .int()
      .min(15)
      .max(1800, "the HPA API allows at most 1800 s")
      .default(MODEL_SERVER_SCALER_DEFAULTS.scaleDownPeriodSeconds)
      .describe("at most one GPU replica is removed per this many seconds"),
    fallbackReplicas: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe("replicas to hold while a trigger's source fails; default: minReplicas, at least 1"),
    failureThreshold: z
      .number()
      .int()
      .min(1)
      .default(MODEL_SERVER_SCALER_DEFAULTS.failureThreshold)
      .describe("failed trigger reads in a row before fallbackReplicas applies"),
  })
  .prefault({});

const modelServerSchema = z
  .strictObject({
    ...modelServerBase,
    minReplicas: z
      .number()
      .int()
      .min(0)
      .default(MODEL_SERVER_SCALER_DEFAULTS.minReplicas)
      .describe("fewest GPU replicas"),
    maxReplicas: z
      .number()
      .int()
      .min(1)
      .default(MODEL_SERVER_SCALER_DEFAULTS.maxReplicas)
      .describe("most GPU replicas"),
    scaling: modelScalingSchema.describe("KEDA triggers and HPA behaviour for the GPU replicas"),
  })
  .prefault({});

const fallbackModelServerSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe("run a second, smaller model for degradation level 2"),
    ...modelServerBase,
    model: modelServerBase.model.default("deepseek-r1-distill-qwen-1.5b"),
    gpu: modelServerBase.gpu.default("L4"),
    replicas: z.number().int().min(1).default(1).describe("fixed replica count of the fallback model"),
  })
  .prefault({});

const workerSchema = (worker: WorkerName) => {
  const defaults = { ...FUNCTION_WORKER_DEFAULTS, ...WORKER_DEFAULTS[worker] };
  return z
    .strictObject({
      minReplicas: z
        .number()
        .int()
        .min(0)
        .default(defaults.minReplicas)
        .describe("fewest replicas (0 lets KEDA scale to zero)"),
      maxReplicas: z.number().int().min(1).default(defaults.maxReplicas).describe("most replicas"),
      queueLength: z
        .number()
        .int()
        .min(1)
        .default(defaults.queueLength)
        .describe("messages per replica KEDA aims for (aws-sqs-queue queueLength)"),
      activationQueueLength: z
        .number()
        .int()
        .min(0)
        .default(defaults.activationQueueLength)
        .describe(
          "KEDA wakes the worker from zero replicas when the queue holds MORE than this; 0: one message wakes it",
        ),
      scaleOnInFlight: z
        .boolean()
        .default(defaults.scaleOnInFlight)
        .describe("count in-flight (received, not yet deleted) messages as load"),
      drainSeconds: z
        .number()
        .int()
        .min(1)
        .default(defaults.drainSeconds)
        .describe("time to finish in-flight messages after SIGTERM; the grace period is 15 s longer"),
      cpuMillis: z
        .number()
        .int()
        .min(50)
        .default(defaults.cpuMillis)
        .describe("CPU request in millicores (limit: 4×)"),
      memoryRequestMi: z
        .number()
        .int()
        .min(64)
        .default(defaults.memoryRequestMi)
        .describe("memory request in MiB"),
      memoryLimitMi: z.number().int().min(64).default(defaults.memoryLimitMi).describe("memory limit in MiB"),
      nodeSelector: labelMap.optional().describe("node labels this worker's pods require"),
      tolerations: z
        .array(tolerationSchema)
        .default([...defaults.tolerations])
        .describe("taints this worker's pods tolerate"),
      roleArn: roleArn
        .optional()
        .describe("IAM role for this function's ServiceAccount; default: aws.roleArn"),
    })
    .prefault({});
};

const ingestSchema = z
  .strictObject({
    minScale: z
      .number()
      .int()
      .min(0)
      .default(INGEST_SERVICE_DEFAULTS.minScale)
      .describe("fewest pods (Knative min-scale); 0 allows cold starts"),
    maxScale: z
      .number()
      .int()
      .min(1)
      .default(INGEST_SERVICE_DEFAULTS.maxScale)
      .describe("most pods (Knative max-scale)"),
    containerConcurrency: z
      .number()
      .int()
      .min(0)
      .default(INGEST_SERVICE_DEFAULTS.containerConcurrency)
      .describe("hard limit of requests in flight per pod (0: unlimited)"),
    targetConcurrency: z
      .number()
      .int()
      .min(1)
      .default(INGEST_SERVICE_DEFAULTS.targetConcurrency)
      .describe("requests in flight per pod the Knative autoscaler (KPA) aims for"),
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(600)
      .default(INGEST_SERVICE_DEFAULTS.timeoutSeconds)
      .describe(
        "request timeout; above DEEPQUEUE_CHAT_DEADLINE_SECONDS + 15, since a chat completion waits on the line for its answer",
      ),
    cpuMillis: z
      .number()
      .int()
      .min(50)
      .default(INGEST_SERVICE_DEFAULTS.cpuMillis)
      .describe("CPU request in millicores (limit: 4×)"),
    memoryMi: z
      .number()
      .int()
      .min(64)
      .default(INGEST_SERVICE_DEFAULTS.memoryMi)
      .describe("memory request and limit in MiB"),
    roleArn: roleArn.optional().describe("IAM role for ingest's ServiceAccount; default: aws.roleArn"),
  })
  .prefault({});

/** OTLP trace export; off unless `endpoint` is set (docs/api.md#tracing). */
const tracingSchema = z
  .strictObject({
    endpoint: z
      .url()
      .optional()
      .describe(
        "OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT), e.g. http://otel-collector.observability:4318; unset: tracing off",
      ),
    protocol: z
      .enum(["http/protobuf", "http/json", "grpc"])
      .default("http/protobuf")
      .describe("OTEL_EXPORTER_OTLP_PROTOCOL"),
    sampler: z
      .enum([
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
        "always_on",
        "always_off",
        "traceidratio",
      ])
      .default("parentbased_always_on")
      .describe("OTEL_TRACES_SAMPLER"),
    samplerArg: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe("OTEL_TRACES_SAMPLER_ARG: the sampled fraction for the traceidratio samplers"),
    serviceName: z
      .string()
      .min(1)
      .optional()
      .describe("OTEL_SERVICE_NAME of every function; default: deepqueue-<function>"),
    resourceAttributes: z
      .record(z.string().regex(/^[^=,\s]+$/, "a key without '=', ',' or spaces"), z.string())
      .default({})
      .describe("OTEL_RESOURCE_ATTRIBUTES, e.g. deployment.environment.name: prod"),
  })
  .prefault({});

/**
 * The OTEL_* variables the functions read from `tracing` values; none when no endpoint is set.
 *
 * @example otelEnv({ endpoint: "http://collector:4318", protocol: "http/protobuf", sampler: "parentbased_always_on", resourceAttributes: {} })
 * // { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", OTEL_TRACES_SAMPLER: "parentbased_always_on" }
 */
export function otelEnv(tracing: z.infer<typeof tracingSchema>): Record<string, string> {
  if (!tracing.endpoint) return {};
  const attributes = Object.entries(tracing.resourceAttributes)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join(",");
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: tracing.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: tracing.protocol,
    OTEL_TRACES_SAMPLER: tracing.sampler,
    ...(tracing.samplerArg !== undefined ? { OTEL_TRACES_SAMPLER_ARG: String(tracing.samplerArg) } : {}),
    ...(tracing.serviceName ? { OTEL_SERVICE_NAME: tracing.serviceName } : {}),
    ...(attributes ? { OTEL_RESOURCE_ATTRIBUTES: attributes } : {}),
  };
}

const valuesObject = z.strictObject({
  prefix: z
    .string()
    .regex(PREFIX_PATTERN, "1-20 characters of a-z, 0-9 and '-'")
    .default(DEFAULT_PREFIX)
    .describe("queue, table and object name prefix (DEEPQUEUE_PREFIX)"),
  namespace: z.string().regex(K8S_NAME).default("deepqueue").describe("namespace every object goes into"),
  createNamespace: z.boolean().default(true).describe("emit the Namespace object too"),
  logLevel: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .default("info")
    .describe("LOG_LEVEL of every function"),
  image: z
    .strictObject({
      repository: z.string().min(1).default("ghcr.io/deepqueue/deepqueue").describe("the functions' image"),
      tag: z.string().min(1).default("0.1.0").describe("its tag, pinned"),
      digest: digest.optional().describe("sha256 digest of that image, pulled as repository:tag@digest"),
      pullPolicy: z.enum(["IfNotPresent", "Always", "Never"]).default("IfNotPresent").describe("pull policy"),
    })
    .prefault({})
    .describe("container image of the functions (built from the repository's Dockerfile)"),
  aws: z
    .strictObject({
      region: z.string().min(1).default("us-east-1").describe("AWS_REGION of the queues and tables"),
      accountId: z
        .string()
        .regex(/^\d{12}$/, "a 12-digit AWS account id")
        .optional()
        .describe("account of the queues, for full SQS URLs in KEDA triggers; default: queue names alone"),
      roleArn: roleArn
        .optional()
        .describe("IAM role the functions' ServiceAccounts assume (eks.amazonaws.com/role-arn)"),
      kedaRoleArn: roleArn
        .optional()
        .describe("IAM role KEDA assumes to read queue depth; default: the KEDA operator's own identity"),
    })
    .prefault({})
    .describe("where the queues and tables live, and who may touch them"),
  labels: labelMap.default({}).describe("extra labels on every object and pod"),
  annotations: labelMap.default({}).describe("extra annotations on every object and pod"),
  pods: z
    .strictObject({
      imagePullSecrets: z
        .array(z.string().regex(K8S_NAME))
        .default([])
        .describe("Secrets to pull images with, on every pod"),
      priorityClassName: z
        .string()
        .regex(K8S_NAME)
        .optional()
        .describe("PriorityClass of every pod but ingest's (Knative needs a feature flag for it)"),
    })
    .prefault({})
    .describe("what every pod gets"),
  inferenceApiKey: z
    .strictObject({
      enabled: z
        .boolean()
        .default(true)
        .describe("require a Bearer key on the model servers' /v1 API (vLLM --api-key)"),
      secretName: z
        .string()
        .regex(K8S_NAME)
        .default("inference-api-key")
        .describe(
          "Secret holding it, read by vLLM (VLLM_API_KEY) and the batcher and cache worker (INFERENCE_API_KEY)",
        ),
      key: z.string().min(1).default("key").describe("key inside that Secret"),
    })
    .prefault({})
    .describe("the model servers' API key"),
  modelServer: modelServerSchema.describe("the GPU model server (vLLM)"),
  fallbackModelServer: fallbackModelServerSchema.describe("an optional smaller model server"),
  functions: z
    .strictObject({
      ingest: ingestSchema.describe("the HTTP API, as a Knative Service"),
      cache: workerSchema("cache").describe("the cache worker, on <prefix>-requests"),
      batcher: workerSchema("batcher").describe(
        "the batcher, on <prefix>-inference and the batch lane <prefix>-inference-batch",
      ),
      deliver: workerSchema("deliver").describe("the deliver worker, on <prefix>-delivery"),
      batches: workerSchema("batches").describe(
        "the batch worker (OpenAI's Batch API, docs/openai.md), on <prefix>-batches",
      ),
    })
    .prefault({})
    .describe("the five functions"),
  reconciler: z
    .strictObject({
      enabled: z.boolean().default(true).describe("run `deepqueue reconcile` on a schedule"),
      schedule: z
        .string()
        .refine(
          (c) => c.trim().split(/\s+/).length === 5,
          "a cron expression of 5 fields (minute hour day month weekday)",
        )
        .default("*/5 * * * *")
        .describe("its cron schedule"),
    })
    .prefault({})
    .describe("the CronJob that finishes requests stuck between steps"),
  bootstrap: z
    .strictObject({
      enabled: z.boolean().default(false).describe("run `deepqueue bootstrap` once as a Job"),
    })
    .prefault({})
    .describe("the Job that creates queues and tables (when not made by Terraform/CloudFormation)"),
  monitoring: z
    .strictObject({
      prometheusUrl: z
        .url()
        .default("http://prometheus-operated.monitoring.svc:9090")
        .describe("Prometheus that KEDA's latency triggers query"),
      namespace: z
        .string()
        .regex(K8S_NAME)
        .default("monitoring")
        .describe("namespace of Prometheus, allowed to scrape through the NetworkPolicies"),
      podMonitors: z.boolean().default(false).describe("emit Prometheus Operator PodMonitors"),
      podMonitorLabels: labelMap
        .default({ release: "kube-prometheus-stack" })
        .describe(
          "labels your Prometheus selects PodMonitors and PrometheusRules by (kube-prometheus-stack: release: <its release name>)",
        ),
      prometheusRules: z
        .boolean()
        .default(false)
        .describe("emit a PrometheusRule with deepqueue's alerts (needs the Prometheus Operator's CRDs)"),
      grafanaDashboard: z
        .boolean()
        .default(true)
        .describe("emit the Grafana dashboard as a ConfigMap for Grafana's sidecar"),
      dashboardLabels: labelMap
        .default({ grafana_dashboard: "1" })
        .describe(
          'labels Grafana\'s dashboard sidecar looks for (kube-prometheus-stack: grafana_dashboard: "1")',
        ),
      alerts: z
        .strictObject({
          oldestMessageMinutes: z
            .number()
            .positive()
            .default(10)
            .describe("alert when a pipeline queue's oldest message is older than this"),
          callbackFailuresPerMinute: z
            .number()
            .positive()
            .default(1)
            .describe("alert when webhook callbacks fail faster than this (per minute, over 10 minutes)"),
          runbookUrl: z
            .url()
            .optional()
            .describe("where your runbooks live; each alert's runbook_url is this + #<alert name>"),
        })
        .prefault({})
        .describe("alert thresholds (the TTFT target is modelServer.scaling.ttftP95Seconds)"),
    })
    .prefault({})
    .describe("metrics"),
  dashboard: dashboardValuesSchema,
  tracing: tracingSchema.describe(
    "OpenTelemetry traces, passed to every function as the standard OTEL_* variables (metrics stay on Prometheus)",
  ),
  networkPolicies: z
    .strictObject({
      enabled: z.boolean().default(true).describe("emit NetworkPolicies"),
      ingressNamespaces: z
        .array(z.string().regex(K8S_NAME))
        .min(1)
        .default(["knative-serving", "kourier-system"])
        .describe("namespaces allowed to reach ingest: Knative's activator and the ingress gateway"),
      egress: z
        .boolean()
        .default(true)
        .describe(
          "restrict egress too: DNS, each other, HTTPS (AWS, Hugging Face), EKS Pod Identity, webhooks",
        ),
      webhookCidrs: z
        .array(z.cidrv4())
        .min(1)
        .default(["0.0.0.0/0"])
        .describe("where the deliver worker may post webhooks, any port"),
    })
    .prefault({})
    .describe("who may talk to whom"),
});

/** A check across fields that one field's schema cannot make; it reports issues on `ctx`, each with its path. */
type ValuesCheck = (v: z.output<typeof valuesObject>, ctx: z.RefinementCtx) => void;

const issue = (path: (string | number)[], message: string) => ({ code: "custom" as const, path, message });

/** The GPU replicas' bounds, and a cooldown longer than a model load. */
const checkModelServerScaling: ValuesCheck = ({ modelServer: m }, ctx) => {
  if (m.minReplicas > m.maxReplicas) {
    ctx.addIssue(
      issue(
        ["modelServer", "minReplicas"],
        `minReplicas (${m.minReplicas}) exceeds maxReplicas (${m.maxReplicas})`,
      ),
    );
  }
  if (m.scaling.cooldownSeconds <= m.modelLoadSeconds) {
    ctx.addIssue(
      issue(
        ["modelServer", "scaling", "cooldownSeconds"],
        `cooldownSeconds (${m.scaling.cooldownSeconds}) must exceed modelLoadSeconds (${m.modelLoadSeconds}), or a replica may be removed before it has served`,
      ),
    );
  }
};

/** Each model server in use fits its GPUs, and its weights cache can serve all its replicas. */
const checkModelServerSizing: ValuesCheck = (v, ctx) => {
  const servers = [
    ["modelServer", v.modelServer, v.modelServer.maxReplicas],
    ...(v.fallbackModelServer.enabled
      ? [["fallbackModelServer", v.fallbackModelServer, v.fallbackModelServer.replicas] as const]
      : []),
  ] as const;
  for (const [key, server, most] of servers) {
    const problem = sizingProblem(server);
    if (problem) ctx.addIssue(issue([key], problem));
    const { type, existingClaim, accessMode } = server.cache;
    if (type === "pvc" && !existingClaim && accessMode === "ReadWriteOnce" && most > 1) {
      ctx.addIssue(
        issue(
          [key, "cache", "accessMode"],
          `accessMode ReadWriteOnce cannot be shared by up to ${most} replicas on different nodes; use ReadWriteMany or cache.type emptyDir`,
        ),
      );
    }
  }
};

/** An enabled fallback takes whatever the main model takes, under a name of its own. */
const checkFallback: ValuesCheck = ({ modelServer: m, fallbackModelServer: f }, ctx) => {
  if (!f.enabled) return;
  if (f.maxModelLen < m.maxModelLen) {
    ctx.addIssue(
      issue(
        ["fallbackModelServer", "maxModelLen"],
        `maxModelLen (${f.maxModelLen}) is below modelServer.maxModelLen (${m.maxModelLen}): requests the main model accepts would fail on the fallback`,
      ),
    );
  }
  const name = (s: { model: keyof typeof MODELS; servedModelName?: string | undefined }) =>
    s.servedModelName ?? MODELS[s.model].servedName;
  if (name(f) === name(m)) {
    ctx.addIssue(
      issue(
        ["fallbackModelServer", "servedModelName"],
        `"${name(f)}" is also the main model's name; the fallback needs its own (DEEPQUEUE_FALLBACK_MODEL)`,
      ),
    );
  }
};

/** Each worker's memory limit covers its request, and its replica bounds are in order. */
const checkWorkers: ValuesCheck = ({ functions }, ctx) => {
  for (const name of Object.keys(WORKER_DEFAULTS) as WorkerName[]) {
    const w = functions[name];
    if (w.memoryLimitMi < w.memoryRequestMi) {
      ctx.addIssue(
        issue(
          ["functions", name, "memoryLimitMi"],
          `memoryLimitMi (${w.memoryLimitMi}) is below memoryRequestMi (${w.memoryRequestMi})`,
        ),
      );
    }
    if (w.minReplicas > w.maxReplicas) {
      ctx.addIssue(
        issue(
          ["functions", name, "minReplicas"],
          `minReplicas (${w.minReplicas}) exceeds maxReplicas (${w.maxReplicas})`,
        ),
      );
    }
  }
};

/** Ingest's scale bounds are in order, and its target fits under its hard limit. */
const checkIngest: ValuesCheck = ({ functions: { ingest } }, ctx) => {
  if (ingest.minScale > ingest.maxScale) {
    ctx.addIssue(
      issue(
        ["functions", "ingest", "minScale"],
        `minScale (${ingest.minScale}) exceeds maxScale (${ingest.maxScale})`,
      ),
    );
  }
  if (ingest.containerConcurrency > 0 && ingest.targetConcurrency > ingest.containerConcurrency) {
    ctx.addIssue(
      issue(
        ["functions", "ingest", "targetConcurrency"],
        `targetConcurrency (${ingest.targetConcurrency}) exceeds containerConcurrency (${ingest.containerConcurrency})`,
      ),
    );
  }
};

const VALUE_CHECKS: readonly ValuesCheck[] = [
  checkModelServerScaling,
  checkModelServerSizing,
  checkFallback,
  checkWorkers,
  checkIngest,
];

/** The values file's schema: every field, then the checks across fields. */
export const valuesSchema = valuesObject.superRefine((v, ctx) => {
  for (const check of VALUE_CHECKS) check(v, ctx);
});

/** The parsed configuration, every default filled in. */
export type Values = z.infer<typeof valuesSchema>;
export type ValuesInput = z.input<typeof valuesSchema>;
export type ModelServerValues = Values["modelServer"];
export type FallbackModelServerValues = Values["fallbackModelServer"];
export type WorkerValues = Values["functions"]["cache"];

/** A values file that does not parse or validate; the message names each bad field. */
export class ValuesError extends DeepqueueError {
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[], options?: { cause?: unknown }) {
    super(`${source} is not valid:\n${problems.map((p) => `  - ${p}`).join("\n")}`, options);
    this.name = "ValuesError";
    this.problems = problems;
  }
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
  if (issue.code === "invalid_value") {
    const allowed = issue.values.map((v) => JSON.stringify(v)).join(", ");
    const got = "input" in issue && issue.input !== undefined ? ` (got ${JSON.stringify(issue.input)})` : "";
    return `${field}: must be one of ${allowed}${got}`;
  }
  if (issue.code === "unrecognized_keys") {
    return `${field}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
  }
  return `${field}: ${issue.message}`;
}

/**
 * Validates `input` (the parsed values file) and fills in every default.
 *
 * @example
 * parseValues({ modelServer: { model: "deepseek-r1-distill-qwen-1.5b", gpu: "L4" } }).modelServer.maxModelLen // 4096
 */
export function parseValues(input: unknown, source = "values"): Values {
  const parsed = valuesSchema.safeParse(input ?? {}, { reportInput: true });
  if (parsed.success) return parsed.data;
  throw new ValuesError(source, parsed.error.issues.map(formatIssue));
}

/**
 * Reads a YAML or JSON values file and validates it.
 *
 * @example
 * const values = loadValuesFile("infra/profiles/large.yaml");
 */
export function loadValuesFile(path: string): Values {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, "utf8"));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ValuesError(path, [`cannot read it: ${reason}`], { cause: error });
  }
  return parseValues(raw, path);
}

/** The example values files shipped in infra/profiles/. */
export const PROFILES = ["dev-small", "default", "large", "frontier"] as const;
export type Profile = (typeof PROFILES)[number];

/** Path of a shipped profile's values file. */
export function profilePath(profile: Profile): string {
  return new URL(`./profiles/${profile}.yaml`, import.meta.url).pathname;
}
