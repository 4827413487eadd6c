import { ApiObject, Duration, JsonPatch, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { type Dtype, GPUS, type GpuType, MODELS, type ModelId, sizingProblem } from "./catalogue.ts";
import { CONTAINER_SECURITY, type Component, componentLabels, POD_SECURITY } from "./workload-defaults.ts";

/** The vLLM OpenAI-compatible server image, pinned. */
export const VLLM_IMAGE = "vllm/vllm-openai:v0.11.0";
/** The port vLLM's OpenAI server listens on; the Service exposes the same. */
export const MODEL_SERVER_PORT = 8000;
/** Period of the startup probe; its failureThreshold is modelLoadSeconds / this. */
const STARTUP_PROBE_PERIOD_SECONDS = 10;
const MODEL_CACHE_PATH = "/model-cache";

export interface ModelCacheOptions {
  /** pvc: a claim that outlives pods; emptyDir: per pod, re-downloaded on every start. @default "emptyDir" */
  readonly type?: "pvc" | "emptyDir";
  /** Mount this existing claim instead of making one. @default - a new claim */
  readonly existingClaim?: string;
  /** Storage class of a new claim. @default - the cluster's default */
  readonly storageClass?: string;
  /** @default "ReadWriteMany" */
  readonly accessMode?: "ReadWriteMany" | "ReadWriteOnce";
  /** Claim size in GiB. @default - the checkpoint's size × 1.2 + 10 */
  readonly sizeGi?: number;
}

export interface ModelServerProps {
  /** Name of the Deployment, Service, ServiceAccount and PodDisruptionBudget. */
  readonly name: string;
  /** deepqueue prefix, for labels. */
  readonly prefix: string;
  /** @default "model-server" */
  readonly component?: Extract<Component, "model-server" | "fallback-model-server">;
  readonly model: ModelId;
  readonly gpu: GpuType;
  /** GPUs per replica (vLLM --tensor-parallel-size). @default 1 */
  readonly tensorParallelSize?: number;
  /** @default "bfloat16" */
  readonly dtype?: Dtype;
  /** @default - the catalogue's served name for `model` */
  readonly servedModelName?: string;
  /** @default 4096 */
  readonly maxModelLen?: number;
  /** @default 0.9 */
  readonly gpuMemoryUtilization?: number;
  /** Full-length sequences the KV cache must hold. @default 4 */
  readonly kvCacheSequences?: number;
  /** @default VLLM_IMAGE */
  readonly image?: string;
  /** More vLLM flags, appended. @default [] */
  readonly extraArgs?: readonly string[];
  /** Startup probe budget: download plus load. @default 900 */
  readonly modelLoadSeconds?: number;
  /** @default 4 */
  readonly cpuPerGpu?: number;
  /** Host memory per GPU, /dev/shm aside. @default 24 */
  readonly memoryGiPerGpu?: number;
  /** @default - 2 + 4 per GPU beyond the first */
  readonly shmSizeGi?: number;
  /** @default - emptyDir */
  readonly cache?: ModelCacheOptions;
  /** Secret with a Hugging Face token; optional at run time. @default { name: "hf-token", key: "token" } */
  readonly hfTokenSecret?: { readonly name: string; readonly key: string };
  /** Node labels to require. @default - nvidia.com/gpu.product in the GPU's product names */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** @default - tolerate the nvidia.com/gpu taint */
  readonly tolerations?: readonly {
    readonly key: string;
    readonly operator: "Exists" | "Equal";
    readonly value?: string;
    readonly effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  }[];
  /** Replicas before any autoscaler takes over. @default 1 */
  readonly replicas?: number;
  /** The most replicas this server will run (checked against a ReadWriteOnce cache). @default - replicas */
  readonly maxReplicas?: number;
}

/**
 * A vLLM OpenAI-compatible server for one DeepSeek model on NVIDIA GPUs:
 * Deployment, Service on port 8000, PodDisruptionBudget, ServiceAccount, and
 * the model cache claim. Refuses, at synth time, a model that does not fit
 * its GPUs (see catalogue.ts), naming what would.
 *
 * @example
 * const server = new ModelServer(chart, "model-server", {
 *   name: "deepqueue-model", prefix: "deepqueue", model: "deepseek-llm-67b-chat", gpu: "A100-80GB", tensorParallelSize: 2,
 * });
 * server.url; // "http://deepqueue-model:8000/v1"
 */
export class ModelServer extends Construct {
  readonly deployment: kplus.Deployment;
  readonly service: kplus.Service;
  readonly serviceAccount: kplus.ServiceAccount;
  readonly servedModelName: string;
  readonly tensorParallelSize: number;
  readonly modelLoadSeconds: number;
  /** Labels on every pod of this server (NetworkPolicies select on them). */
  readonly podLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: ModelServerProps) {
    super(scope, id);
    const spec = MODELS[props.model];
    const tp = props.tensorParallelSize ?? 1;
    const dtype = props.dtype ?? "bfloat16";
    const maxModelLen = props.maxModelLen ?? 4096;
    const gpuMemoryUtilization = props.gpuMemoryUtilization ?? 0.9;
    const problem = sizingProblem({
      model: props.model,
      gpu: props.gpu,
      tensorParallelSize: tp,
      dtype,
      maxModelLen,
      gpuMemoryUtilization,
      kvCacheSequences: props.kvCacheSequences ?? 4,
    });
    if (problem) throw new Error(`ModelServer ${props.name}: ${problem}`);

    const replicas = props.replicas ?? 1;
    const cache = props.cache ?? {};
    const cacheType = cache.type ?? "emptyDir";
    const accessMode = cache.accessMode ?? "ReadWriteMany";
    if (
      cacheType === "pvc" &&
      !cache.existingClaim &&
      accessMode === "ReadWriteOnce" &&
      (props.maxReplicas ?? replicas) > 1
    ) {
      throw new Error(
        `ModelServer ${props.name}: cache.accessMode ReadWriteOnce cannot serve maxReplicas ${props.maxReplicas ?? replicas} replicas on different nodes`,
      );
    }
    if (cacheType === "emptyDir" && cache.existingClaim) {
      throw new Error(
        `ModelServer ${props.name}: cache.existingClaim needs cache.type "pvc", not "emptyDir"`,
      );
    }

    this.servedModelName = props.servedModelName ?? spec.servedName;
    this.tensorParallelSize = tp;
    this.modelLoadSeconds = props.modelLoadSeconds ?? 900;
    const component = props.component ?? "model-server";
    this.podLabels = { ...componentLabels(props.prefix, component), "app.kubernetes.io/name": props.name };

    this.serviceAccount = new kplus.ServiceAccount(this, "service-account", {
      metadata: { name: props.name, labels: this.podLabels },
      automountToken: false,
    });

    const shmGi = props.shmSizeGi ?? 2 + 4 * (tp - 1);
    const memoryGi = (props.memoryGiPerGpu ?? 24) * tp + shmGi;
    const cpu = (props.cpuPerGpu ?? 4) * tp;

    this.deployment = new kplus.Deployment(this, "deployment", {
      metadata: { name: props.name, labels: this.podLabels },
      podMetadata: { labels: this.podLabels },
      replicas,
      serviceAccount: this.serviceAccount,
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      // vLLM finishes the requests it holds on SIGTERM; give long generations time.
      terminationGracePeriod: Duration.seconds(120),
      // Never take a serving GPU replica down before its successor is ready.
      strategy: kplus.DeploymentStrategy.rollingUpdate({
        maxSurge: kplus.PercentOrAbsolute.absolute(1),
        maxUnavailable: kplus.PercentOrAbsolute.absolute(0),
      }),
      // A model load takes minutes; the rollout must not give up first.
      progressDeadline: Duration.seconds(this.modelLoadSeconds + 600),
    });

    const args = [
      "--model",
      spec.huggingFaceId,
      "--served-model-name",
      this.servedModelName,
      "--host",
      "0.0.0.0",
      "--port",
      String(MODEL_SERVER_PORT),
      "--max-model-len",
      String(maxModelLen),
      "--dtype",
      dtype === "fp8" ? "bfloat16" : dtype,
      ...(dtype === "fp8" && !("nativeFp8" in spec && spec.nativeFp8) ? ["--quantization", "fp8"] : []),
      "--tensor-parallel-size",
      String(tp),
      "--gpu-memory-utilization",
      String(gpuMemoryUtilization),
      ...(props.extraArgs ?? []),
    ];

    const hf = props.hfTokenSecret ?? { name: "hf-token", key: "token" };
    const hfSecret = kplus.Secret.fromSecretName(this, "hf-token", hf.name);
    const container = this.deployment.addContainer({
      name: "vllm",
      image: props.image ?? VLLM_IMAGE,
      imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      // The image's entrypoint changed across vLLM releases; the module path has not.
      command: ["python3", "-m", "vllm.entrypoints.openai.api_server"],
      args,
      ports: [{ name: "http", number: MODEL_SERVER_PORT }],
      envVariables: {
        HF_TOKEN: kplus.EnvValue.fromSecretValue({ secret: hfSecret, key: hf.key }, { optional: true }),
        HF_HOME: kplus.EnvValue.fromValue(MODEL_CACHE_PATH),
        // Read-only root filesystem: every cache vLLM, Triton and torch.compile write goes under /tmp.
        HOME: kplus.EnvValue.fromValue("/tmp"),
        XDG_CACHE_HOME: kplus.EnvValue.fromValue("/tmp/.cache"),
        VLLM_NO_USAGE_STATS: kplus.EnvValue.fromValue("1"),
      },
      resources: {
        cpu: { request: kplus.Cpu.units(cpu), limit: kplus.Cpu.units(cpu) },
        memory: { request: Size.gibibytes(memoryGi), limit: Size.gibibytes(memoryGi) },
      },
      securityContext: CONTAINER_SECURITY,
      startup: kplus.Probe.fromHttpGet("/health", {
        port: MODEL_SERVER_PORT,
        periodSeconds: Duration.seconds(STARTUP_PROBE_PERIOD_SECONDS),
        timeoutSeconds: Duration.seconds(5),
        failureThreshold: Math.ceil(this.modelLoadSeconds / STARTUP_PROBE_PERIOD_SECONDS),
      }),
      readiness: kplus.Probe.fromHttpGet("/health", {
        port: MODEL_SERVER_PORT,
        periodSeconds: Duration.seconds(10),
        timeoutSeconds: Duration.seconds(5),
        failureThreshold: 3,
      }),
      liveness: kplus.Probe.fromHttpGet("/health", {
        port: MODEL_SERVER_PORT,
        periodSeconds: Duration.seconds(30),
        timeoutSeconds: Duration.seconds(10),
        failureThreshold: 5,
      }),
    });

    // PyTorch and NCCL share tensors between ranks through /dev/shm; the
    // container runtime's 64 MB default is far too small.
    const shm = kplus.Volume.fromEmptyDir(this, "shm", "dshm", {
      medium: kplus.EmptyDirMedium.MEMORY,
      sizeLimit: Size.gibibytes(shmGi),
    });
    container.mount("/dev/shm", shm);
    container.mount("/tmp", kplus.Volume.fromEmptyDir(this, "tmp", "tmp", { sizeLimit: Size.gibibytes(20) }));
    container.mount(
      MODEL_CACHE_PATH,
      this.cacheVolume(props.name, props.model, cacheType, cache, accessMode),
    );

    this.schedule(props);
    this.addGpuLimit(tp);

    this.service = new kplus.Service(this, "service", {
      metadata: { name: props.name, labels: this.podLabels },
      selector: this.deployment,
      ports: [{ name: "http", port: MODEL_SERVER_PORT, targetPort: MODEL_SERVER_PORT }],
    });

    new kplus.k8s.KubePodDisruptionBudget(this, "pdb", {
      metadata: { name: props.name, labels: this.podLabels },
      spec: {
        // One replica at a time may be evicted (node drains, upgrades); with
        // one replica, that one — blocking drains forever would be worse.
        maxUnavailable: kplus.k8s.IntOrString.fromNumber(1),
        selector: { matchLabels: this.deployment.matchLabels },
      },
    });
  }

  /** OpenAI-compatible base URL of this server inside the namespace. */
  get url(): string {
    return `http://${this.service.name}:${MODEL_SERVER_PORT}/v1`;
  }

  private cacheVolume(
    name: string,
    model: ModelId,
    type: "pvc" | "emptyDir",
    cache: ModelCacheOptions,
    accessMode: "ReadWriteMany" | "ReadWriteOnce",
  ): kplus.Volume {
    const spec = MODELS[model];
    // What is downloaded is the checkpoint as published: FP8 for V3/R1, 16-bit otherwise (even when served as fp8).
    const checkpointGb = spec.paramsBillion * ("nativeFp8" in spec && spec.nativeFp8 ? 1 : 2);
    const sizeGi = cache.sizeGi ?? Math.ceil(checkpointGb * 1.2 + 10);
    if (type === "emptyDir") {
      return kplus.Volume.fromEmptyDir(this, "model-cache", "model-cache", {
        sizeLimit: Size.gibibytes(sizeGi),
      });
    }
    const claim = cache.existingClaim
      ? kplus.PersistentVolumeClaim.fromClaimName(this, "model-cache-claim", cache.existingClaim)
      : new kplus.PersistentVolumeClaim(this, "model-cache-claim", {
          metadata: { name: `${name}-cache`, labels: this.podLabels },
          accessModes: [
            accessMode === "ReadWriteMany"
              ? kplus.PersistentVolumeAccessMode.READ_WRITE_MANY
              : kplus.PersistentVolumeAccessMode.READ_WRITE_ONCE,
          ],
          storage: Size.gibibytes(sizeGi),
          ...(cache.storageClass ? { storageClassName: cache.storageClass } : {}),
        });
    return kplus.Volume.fromPersistentVolumeClaim(this, "model-cache", claim, { name: "model-cache" });
  }

  private schedule(props: ModelServerProps): void {
    const selector = props.nodeSelector
      ? Object.entries(props.nodeSelector).map(([k, v]) => kplus.NodeLabelQuery.is(k, v))
      : [kplus.NodeLabelQuery.in("nvidia.com/gpu.product", [...GPUS[props.gpu].productLabels])];
    this.deployment.scheduling.attract(kplus.Node.labeled(...selector));
    const effects = {
      NoSchedule: kplus.TaintEffect.NO_SCHEDULE,
      PreferNoSchedule: kplus.TaintEffect.PREFER_NO_SCHEDULE,
      NoExecute: kplus.TaintEffect.NO_EXECUTE,
    } as const;
    const tolerations = props.tolerations ?? [
      { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" } as const,
    ];
    for (const t of tolerations) {
      const options = { effect: effects[t.effect] };
      this.deployment.scheduling.tolerate(
        kplus.Node.tainted(
          t.operator === "Equal"
            ? kplus.NodeTaintQuery.is(t.key, t.value ?? "", options)
            : kplus.NodeTaintQuery.exists(t.key, options),
        ),
      );
    }
  }

  /**
   * cdk8s-plus has no field for extended resources, so `nvidia.com/gpu` goes
   * in through this one JSON patch, the only escape hatch in deepqueue's
   * manifests. Extended resources need limits (requests default to them).
   * https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/
   */
  private addGpuLimit(gpus: number): void {
    // The patch lands before KubeDeployment maps every resource quantity to
    // its `.value`, so the value must be a Quantity: a bare number renders as null.
    const quantity = kplus.k8s.Quantity.fromNumber(gpus);
    ApiObject.of(this.deployment).addJsonPatch(
      JsonPatch.add("/spec/template/spec/containers/0/resources/limits/nvidia.com~1gpu", quantity),
      JsonPatch.add("/spec/template/spec/containers/0/resources/requests/nvidia.com~1gpu", quantity),
    );
  }
}
