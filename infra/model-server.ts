import { createHash } from "node:crypto";
import { ApiObject, Duration, JsonPatch, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { type Dtype, GPUS, type GpuType, MODELS, type ModelId, sizingProblem } from "./catalogue.ts";
import { PropsError } from "./errors.ts";
import {
  COMPONENT_LABEL,
  CONTAINER_SECURITY,
  type Component,
  componentLabels,
  imageReference,
  POD_SECURITY,
  schedule,
  selectorLabels,
  type Toleration,
  withDefaults,
} from "./workload-defaults.ts";

/**
 * The vLLM OpenAI-compatible server image, pinned: v0.29.0 (September 2026)
 * has `--shutdown-timeout` (drain in-flight requests on SIGTERM, vLLM #36666)
 * and `--reasoning-parser deepseek_r1`. Pin its digest with `imageDigest`.
 */
export const VLLM_IMAGE = "vllm/vllm-openai:v0.29.0";
/** The port vLLM's OpenAI server listens on; the Service exposes the same. */
export const MODEL_SERVER_PORT = 8000;
/** Period of the startup probe; its failureThreshold is modelLoadSeconds / this. */
const STARTUP_PROBE_PERIOD_SECONDS = 10;
const MODEL_CACHE_PATH = "/model-cache";
/** Beyond preStop + shutdown timeout, for the process to exit after draining. */
const GRACE_MARGIN_SECONDS = 15;
/** Scratch space for vLLM, torch.compile and Triton caches. */
const TMP_GI = 20;

/** Where the weights live unless told otherwise (values: `modelServer.cache`). */
export const MODEL_CACHE_DEFAULTS = {
  type: "pvc",
  storageClass: "efs-sc",
  accessMode: "ReadWriteMany",
} as const satisfies ModelCacheOptions;

/** Every model server's defaults, the main one and the fallback (values: `modelServer`, `fallbackModelServer`). */
export const MODEL_SERVER_DEFAULTS = {
  component: "model-server",
  tensorParallelSize: 1,
  dtype: "bfloat16",
  maxModelLen: 4096,
  gpuMemoryUtilization: 0.9,
  kvCacheSequences: 4,
  image: VLLM_IMAGE,
  extraArgs: [] as readonly string[],
  modelLoadSeconds: 900,
  cpuPerGpu: 4,
  memoryGiPerGpu: 24,
  cache: MODEL_CACHE_DEFAULTS as ModelCacheOptions,
  hfTokenSecret: { name: "hf-token", key: "token" },
  tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }] as readonly Toleration[],
  replicas: 1,
  revision: "main",
  shutdownTimeoutSeconds: 300,
  preStopSeconds: 10,
  rolloutMaxSurge: 1,
} as const satisfies Partial<ModelServerProps>;

/**
 * `hf download` (huggingface_hub's CLI, in the vLLM image) into HF_HOME at a
 * pinned revision, then a marker file: the Hub cache shows a snapshot folder
 * while files are still arriving, so only the marker says "complete".
 */
function downloadCommand(repo: string, revision: string, marker: string): string[] {
  return [
    "sh",
    "-c",
    `hf download "$0" --revision "$1" && touch "${MODEL_CACHE_PATH}/${marker}"`,
    repo,
    revision,
  ];
}

/** Waits until the download Job has left its marker. */
function waitCommand(marker: string): string[] {
  return [
    "sh",
    "-c",
    `until [ -f "${MODEL_CACHE_PATH}/${marker}" ]; do echo "waiting for the download Job (${marker})"; sleep 15; done`,
  ];
}

export interface ModelCacheOptions {
  /** pvc: a claim that outlives pods; emptyDir: per pod, re-downloaded on every start. @default MODEL_CACHE_DEFAULTS.type */
  readonly type?: "pvc" | "emptyDir";
  /** Mount this existing claim instead of making one. @default - a new claim */
  readonly existingClaim?: string;
  /** Storage class of a new claim. @default MODEL_CACHE_DEFAULTS.storageClass */
  readonly storageClass?: string;
  /** @default MODEL_CACHE_DEFAULTS.accessMode */
  readonly accessMode?: "ReadWriteMany" | "ReadWriteOnce";
  /** Claim size in GiB. @default - the checkpoint's size × 1.2 + 10 */
  readonly sizeGi?: number;
}

export interface ModelServerProps {
  /** Name of the Deployment, Service, ServiceAccount and PodDisruptionBudget. */
  readonly name: string;
  /** deepqueue prefix, for labels. */
  readonly prefix: string;
  /** @default MODEL_SERVER_DEFAULTS.component */
  readonly component?: Extract<Component, "model-server" | "fallback-model-server">;
  readonly model: ModelId;
  readonly gpu: GpuType;
  /** GPUs per replica (vLLM --tensor-parallel-size). @default MODEL_SERVER_DEFAULTS.tensorParallelSize */
  readonly tensorParallelSize?: number;
  /** @default MODEL_SERVER_DEFAULTS.dtype */
  readonly dtype?: Dtype;
  /** @default - the catalogue's served name for `model` */
  readonly servedModelName?: string;
  /** @default MODEL_SERVER_DEFAULTS.maxModelLen */
  readonly maxModelLen?: number;
  /** @default MODEL_SERVER_DEFAULTS.gpuMemoryUtilization */
  readonly gpuMemoryUtilization?: number;
  /** Full-length sequences the KV cache must hold. @default MODEL_SERVER_DEFAULTS.kvCacheSequences */
  readonly kvCacheSequences?: number;
  /** @default MODEL_SERVER_DEFAULTS.image */
  readonly image?: string;
  /** More vLLM flags, appended. @default MODEL_SERVER_DEFAULTS.extraArgs */
  readonly extraArgs?: readonly string[];
  /** Startup probe budget: download plus load. @default MODEL_SERVER_DEFAULTS.modelLoadSeconds */
  readonly modelLoadSeconds?: number;
  /** @default MODEL_SERVER_DEFAULTS.cpuPerGpu */
  readonly cpuPerGpu?: number;
  /** Host memory per GPU, /dev/shm aside. @default MODEL_SERVER_DEFAULTS.memoryGiPerGpu */
  readonly memoryGiPerGpu?: number;
  /** @default - 2 + 4 per GPU beyond the first */
  readonly shmSizeGi?: number;
  /** @default MODEL_CACHE_DEFAULTS */
  readonly cache?: ModelCacheOptions;
  /** Secret with a Hugging Face token; optional at run time. @default MODEL_SERVER_DEFAULTS.hfTokenSecret */
  readonly hfTokenSecret?: { readonly name: string; readonly key: string };
  /** Node labels to require. @default - nvidia.com/gpu.product in the GPU's product names */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** @default MODEL_SERVER_DEFAULTS.tolerations: the nvidia.com/gpu taint */
  readonly tolerations?: readonly Toleration[];
  /** Replicas before any autoscaler takes over. @default MODEL_SERVER_DEFAULTS.replicas */
  readonly replicas?: number;
  /** The most replicas this server will run (checked against a ReadWriteOnce cache). @default - replicas */
  readonly maxReplicas?: number;
  /** `sha256:…` of `image`, appended as `image@digest`. @default - the tag alone */
  readonly imageDigest?: string;
  /** Hugging Face revision (commit, tag or branch) downloaded and served. @default MODEL_SERVER_DEFAULTS.revision */
  readonly revision?: string;
  /** vLLM `--shutdown-timeout`: how long in-flight generations may finish after SIGTERM. @default MODEL_SERVER_DEFAULTS.shutdownTimeoutSeconds */
  readonly shutdownTimeoutSeconds?: number;
  /** preStop sleep, so the Service stops routing before SIGTERM. @default MODEL_SERVER_DEFAULTS.preStopSeconds */
  readonly preStopSeconds?: number;
  /** Extra replicas during a rollout (0: replace one at a time, needs no spare GPU node). @default MODEL_SERVER_DEFAULTS.rolloutMaxSurge */
  readonly rolloutMaxSurge?: number;
  /** Secret with the key vLLM requires as Bearer token (VLLM_API_KEY). @default - no key */
  readonly apiKeySecret?: { readonly name: string; readonly key: string };
}

/** The props with every default filled in. */
type ResolvedProps = ModelServerProps & Required<Pick<ModelServerProps, keyof typeof MODEL_SERVER_DEFAULTS>>;
type ResolvedCache = ModelCacheOptions & Required<Pick<ModelCacheOptions, keyof typeof MODEL_CACHE_DEFAULTS>>;

/** Refuses a model that does not fit its GPUs, and a cache that cannot serve the replicas. */
function checkProps(p: ResolvedProps, cache: ResolvedCache): void {
  const problem = sizingProblem(p);
  if (problem) throw new PropsError(`ModelServer ${p.name}`, problem);
  const mostReplicas = p.maxReplicas ?? p.replicas;
  if (
    cache.type === "pvc" &&
    !cache.existingClaim &&
    cache.accessMode === "ReadWriteOnce" &&
    mostReplicas > 1
  ) {
    throw new PropsError(
      `ModelServer ${p.name}`,
      `cache.accessMode ReadWriteOnce cannot serve maxReplicas ${mostReplicas} replicas on different nodes`,
    );
  }
  if (cache.type === "emptyDir" && cache.existingClaim) {
    throw new PropsError(
      `ModelServer ${p.name}`,
      'cache.existingClaim needs cache.type "pvc", not "emptyDir"',
    );
  }
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
  /** The Job that downloads the weights into a shared cache claim (pvc caches only). */
  readonly downloadJob?: kplus.Job;
  readonly servedModelName: string;
  readonly tensorParallelSize: number;
  readonly modelLoadSeconds: number;
  /** Labels on every pod of this server (NetworkPolicies select on them). */
  readonly podLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: ModelServerProps) {
    super(scope, id);
    const p: ResolvedProps = withDefaults(MODEL_SERVER_DEFAULTS, props);
    const cache = withDefaults(MODEL_CACHE_DEFAULTS, p.cache);
    checkProps(p, cache);
    const spec = MODELS[p.model];
    this.servedModelName = p.servedModelName ?? spec.servedName;
    this.tensorParallelSize = p.tensorParallelSize;
    this.modelLoadSeconds = p.modelLoadSeconds;
    this.podLabels = { ...componentLabels(p.prefix, p.component), "app.kubernetes.io/name": p.name };
    this.serviceAccount = new kplus.ServiceAccount(this, "service-account", {
      metadata: { name: p.name, labels: this.podLabels },
      automountToken: false,
    });
    this.deployment = this.makeDeployment(p);

    const hfEnv = this.hfEnv(
      kplus.Secret.fromSecretName(this, "hf-token", p.hfTokenSecret.name),
      p.hfTokenSecret.key,
    );
    const shmGi = p.shmSizeGi ?? 2 + 4 * (p.tensorParallelSize - 1);
    const container = this.deployment.addContainer(this.vllmContainer(p, cache, hfEnv, shmGi));
    // PyTorch and NCCL share tensors between ranks through /dev/shm; the
    // container runtime's 64 MB default is far too small.
    const shm = kplus.Volume.fromEmptyDir(this, "shm", "dshm", {
      medium: kplus.EmptyDirMedium.MEMORY,
      sizeLimit: Size.gibibytes(shmGi),
    });
    container.mount("/dev/shm", shm);
    const tmp = kplus.Volume.fromEmptyDir(this, "tmp", "tmp", { sizeLimit: Size.gibibytes(TMP_GI) });
    container.mount("/tmp", tmp);
    const cacheVolume = this.cacheVolume(p.name, p.model, cache);
    container.mount(MODEL_CACHE_PATH, cacheVolume);
    this.downloadJob = this.stageWeights(p, cache, hfEnv, { tmp, cache: cacheVolume });

    this.schedule(p);
    this.addGpuLimit(p.tensorParallelSize);
    this.spreadReplicas();
    this.service = new kplus.Service(this, "service", {
      metadata: { name: p.name, labels: this.podLabels },
      ports: [{ name: "http", port: MODEL_SERVER_PORT, targetPort: MODEL_SERVER_PORT }],
    });
    for (const [k, v] of Object.entries(selectorLabels(this.podLabels))) this.service.selectLabel(k, v);
    this.disruptionBudget(p.name);
  }

  /** The Deployment: replicas, graceful drain, a rollout that never drops a serving replica first. */
  private makeDeployment(p: ResolvedProps): kplus.Deployment {
    const deployment = new kplus.Deployment(this, "deployment", {
      metadata: { name: p.name, labels: this.podLabels },
      podMetadata: { labels: this.podLabels },
      // Select on our own stable labels, not cdk8s's hash of the construct path
      // (a selector is immutable: a renamed construct would break `kubectl apply`).
      select: false,
      replicas: p.replicas,
      serviceAccount: this.serviceAccount,
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      // preStop, then vLLM drains for up to --shutdown-timeout, then exits.
      terminationGracePeriod: Duration.seconds(
        p.preStopSeconds + p.shutdownTimeoutSeconds + GRACE_MARGIN_SECONDS,
      ),
      // With a surge, a serving replica never goes before its successor is ready; that needs a
      // spare node of the same GPUs. rolloutMaxSurge 0 replaces one replica at a time instead.
      strategy: kplus.DeploymentStrategy.rollingUpdate({
        maxSurge: kplus.PercentOrAbsolute.absolute(p.rolloutMaxSurge),
        maxUnavailable: kplus.PercentOrAbsolute.absolute(p.rolloutMaxSurge === 0 ? 1 : 0),
      }),
      // A model load takes minutes; the rollout must not give up first.
      progressDeadline: Duration.seconds(this.modelLoadSeconds + 600),
    });
    deployment.select(kplus.LabelSelector.of({ labels: selectorLabels(this.podLabels) }));
    return deployment;
  }

  /** vLLM's server flags. */
  private vllmArgs(p: ResolvedProps): string[] {
    const spec = MODELS[p.model];
    return [
      "--model",
      spec.huggingFaceId,
      "--served-model-name",
      this.servedModelName,
      "--host",
      "0.0.0.0",
      "--port",
      String(MODEL_SERVER_PORT),
      "--max-model-len",
      String(p.maxModelLen),
      "--dtype",
      p.dtype === "fp8" ? "bfloat16" : p.dtype,
      ...(p.dtype === "fp8" && !("nativeFp8" in spec && spec.nativeFp8) ? ["--quantization", "fp8"] : []),
      "--tensor-parallel-size",
      String(p.tensorParallelSize),
      "--gpu-memory-utilization",
      String(p.gpuMemoryUtilization),
      // Weights, tokenizer and remote code all at the staged revision: unset, the last two would
      // ask for the default branch, which an offline server may not have.
      "--revision",
      p.revision,
      "--tokenizer-revision",
      p.revision,
      "--code-revision",
      p.revision,
      // Drain: on SIGTERM, refuse new requests and let in-flight ones finish for up to this long.
      "--shutdown-timeout",
      String(p.shutdownTimeoutSeconds),
      ...("reasoningParser" in spec && spec.reasoningParser
        ? ["--reasoning-parser", spec.reasoningParser]
        : []),
      ...("vllmArgs" in spec && spec.vllmArgs ? spec.vllmArgs : []),
      ...p.extraArgs,
    ];
  }

  /** The vLLM container: flags, environment, resources and probes. */
  private vllmContainer(
    p: ResolvedProps,
    cache: ResolvedCache,
    hfEnv: Record<string, kplus.EnvValue>,
    shmGi: number,
  ): kplus.ContainerProps {
    const tp = p.tensorParallelSize;
    const memoryGi = p.memoryGiPerGpu * tp + shmGi;
    const cpu = p.cpuPerGpu * tp;
    const emptyDirGi = cache.type === "emptyDir" ? this.cacheSizeGi(p.model, cache) : 0;
    return {
      name: "vllm",
      image: imageReference(p.image, p.imageDigest),
      imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      // The image's entrypoint changed across vLLM releases; the module path has not.
      command: ["python3", "-m", "vllm.entrypoints.openai.api_server"],
      args: this.vllmArgs(p),
      ports: [{ name: "http", number: MODEL_SERVER_PORT }],
      envVariables: {
        ...hfEnv,
        // The weights are staged before the server starts (download Job or init container);
        // the server never reaches the Hub, so a Hub outage or a moved branch cannot change what it serves.
        HF_HUB_OFFLINE: kplus.EnvValue.fromValue("1"),
        VLLM_NO_USAGE_STATS: kplus.EnvValue.fromValue("1"),
        ...(p.apiKeySecret
          ? {
              // vLLM's --api-key reads VLLM_API_KEY; /health and /metrics stay open.
              VLLM_API_KEY: kplus.EnvValue.fromSecretValue({
                secret: kplus.Secret.fromSecretName(this, "api-key", p.apiKeySecret.name),
                key: p.apiKeySecret.key,
              }),
            }
          : {}),
      },
      lifecycle: {
        // Endpoints drop a terminating pod asynchronously; keep serving while they catch up.
        preStop: kplus.Handler.fromCommand(["sleep", String(p.preStopSeconds)]),
      },
      resources: {
        cpu: { request: kplus.Cpu.units(cpu), limit: kplus.Cpu.units(cpu) },
        memory: { request: Size.gibibytes(memoryGi), limit: Size.gibibytes(memoryGi) },
        ephemeralStorage: { request: Size.gibibytes(TMP_GI + emptyDirGi) },
      },
      securityContext: CONTAINER_SECURITY,
      startup: this.healthProbe(
        STARTUP_PROBE_PERIOD_SECONDS,
        5,
        Math.ceil(this.modelLoadSeconds / STARTUP_PROBE_PERIOD_SECONDS),
      ),
      readiness: this.healthProbe(10, 5, 3),
      liveness: this.healthProbe(30, 10, 5),
    };
  }

  /** A probe on vLLM's /health. */
  private healthProbe(periodSeconds: number, timeoutSeconds: number, failureThreshold: number): kplus.Probe {
    return kplus.Probe.fromHttpGet("/health", {
      port: MODEL_SERVER_PORT,
      periodSeconds: Duration.seconds(periodSeconds),
      timeoutSeconds: Duration.seconds(timeoutSeconds),
      failureThreshold,
    });
  }

  /**
   * The weights, at the pinned revision, before vLLM starts: on a per-pod emptyDir (or a
   * ReadWriteOnce claim, which a Job on another node could not mount) an init container downloads
   * them; on a ReadWriteMany claim the download Job does, once for every replica, and the init
   * container waits for the Job's marker.
   */
  private stageWeights(
    p: ResolvedProps,
    cache: ResolvedCache,
    hfEnv: Record<string, kplus.EnvValue>,
    volumes: { readonly tmp: kplus.Volume; readonly cache: kplus.Volume },
  ): kplus.Job | undefined {
    const huggingFaceId = MODELS[p.model].huggingFaceId;
    const shared = cache.type === "pvc" && cache.accessMode === "ReadWriteMany";
    const hash = createHash("sha256").update(`${huggingFaceId}@${p.revision}`).digest("hex").slice(0, 8);
    const marker = `.deepqueue-staged-${hash}`;
    const download = downloadCommand(huggingFaceId, p.revision, marker);
    const image = imageReference(p.image, p.imageDigest);
    this.deployment.addInitContainer({
      name: "weights",
      image,
      imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      command: shared ? waitCommand(marker) : download,
      envVariables: hfEnv,
      resources: {
        cpu: { request: kplus.Cpu.units(1), limit: kplus.Cpu.units(4) },
        memory: { request: Size.gibibytes(2), limit: Size.gibibytes(4) },
      },
      securityContext: CONTAINER_SECURITY,
      volumeMounts: [
        { path: "/tmp", volume: volumes.tmp },
        { path: MODEL_CACHE_PATH, volume: volumes.cache },
      ],
    });
    if (!shared) return undefined;
    return this.downloadJobFor(p, {
      name: `${p.name}-download-${hash}`,
      image,
      download,
      hfEnv,
      cache: volumes.cache,
    });
  }

  /** The Job that downloads the weights once into a shared (ReadWriteMany) claim. */
  private downloadJobFor(
    p: ResolvedProps,
    job: {
      readonly name: string;
      readonly image: string;
      readonly download: string[];
      readonly hfEnv: Record<string, kplus.EnvValue>;
      readonly cache: kplus.Volume;
    },
  ): kplus.Job {
    // Named after model and revision: a Job's pod template is immutable, so a new revision is a new Job.
    const downloadJob = new kplus.Job(this, "download", {
      metadata: { name: job.name, labels: this.podLabels },
      podMetadata: {
        labels: { ...this.podLabels, [COMPONENT_LABEL]: `${p.component}-download` satisfies Component },
      },
      serviceAccount: this.serviceAccount,
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      backoffLimit: 6,
      // ~690 GB for V3/R1: at the 50-100 MB/s an EFS file system may sustain, hours. hf download resumes on retry.
      activeDeadline: Duration.seconds(Math.max(this.modelLoadSeconds, 12 * 3600)),
    });
    const downloader = downloadJob.addContainer({
      name: "download",
      image: job.image,
      imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      command: job.download,
      envVariables: job.hfEnv,
      resources: {
        cpu: { request: kplus.Cpu.units(2), limit: kplus.Cpu.units(8) },
        memory: { request: Size.gibibytes(4), limit: Size.gibibytes(8) },
        ephemeralStorage: { request: Size.gibibytes(TMP_GI) },
      },
      securityContext: CONTAINER_SECURITY,
    });
    downloader.mount(
      "/tmp",
      kplus.Volume.fromEmptyDir(this, "download-tmp", "tmp", { sizeLimit: Size.gibibytes(TMP_GI) }),
    );
    // Any node will do: it needs no GPU, only the network and the shared claim.
    downloader.mount(MODEL_CACHE_PATH, job.cache);
    return downloadJob;
  }

  /** Spread replicas over zones and nodes where the cluster allows (never blocks scheduling). */
  private spreadReplicas(): void {
    ApiObject.of(this.deployment).addJsonPatch(
      JsonPatch.add(
        "/spec/template/spec/topologySpreadConstraints",
        ["topology.kubernetes.io/zone", "kubernetes.io/hostname"].map((topologyKey) => ({
          maxSkew: 1,
          topologyKey,
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels: selectorLabels(this.podLabels) },
        })),
      ),
    );
  }

  private disruptionBudget(name: string): void {
    new kplus.k8s.KubePodDisruptionBudget(this, "pdb", {
      metadata: { name, labels: this.podLabels },
      spec: {
        // One replica at a time may be evicted (node drains, upgrades); with
        // one replica, that one — blocking drains forever would be worse.
        maxUnavailable: kplus.k8s.IntOrString.fromNumber(1),
        selector: { matchLabels: this.deployment.matchLabels },
        // A replica stuck unready (a failed load) must not block node drains.
        unhealthyPodEvictionPolicy: "AlwaysAllow",
      },
    });
  }

  /** OpenAI-compatible base URL of this server inside the namespace. */
  get url(): string {
    return `http://${this.service.name}:${MODEL_SERVER_PORT}/v1`;
  }

  private cacheVolume(name: string, model: ModelId, cache: ResolvedCache): kplus.Volume {
    const sizeGi = this.cacheSizeGi(model, cache);
    if (cache.type === "emptyDir") {
      return kplus.Volume.fromEmptyDir(this, "model-cache", "model-cache", {
        sizeLimit: Size.gibibytes(sizeGi),
      });
    }
    const claim = cache.existingClaim
      ? kplus.PersistentVolumeClaim.fromClaimName(this, "model-cache-claim", cache.existingClaim)
      : new kplus.PersistentVolumeClaim(this, "model-cache-claim", {
          metadata: { name: `${name}-cache`, labels: this.podLabels },
          accessModes: [
            cache.accessMode === "ReadWriteMany"
              ? kplus.PersistentVolumeAccessMode.READ_WRITE_MANY
              : kplus.PersistentVolumeAccessMode.READ_WRITE_ONCE,
          ],
          storage: Size.gibibytes(sizeGi),
          ...(cache.storageClass ? { storageClassName: cache.storageClass } : {}),
        });
    return kplus.Volume.fromPersistentVolumeClaim(this, "model-cache", claim, { name: "model-cache" });
  }

  /** Claim or emptyDir size: the checkpoint as published (FP8 for V3/R1, else 16-bit) × 1.2 + 10 GiB. */
  private cacheSizeGi(model: ModelId, cache: ModelCacheOptions): number {
    const spec = MODELS[model];
    const checkpointGb = spec.paramsBillion * ("nativeFp8" in spec && spec.nativeFp8 ? 1 : 2);
    return cache.sizeGi ?? Math.ceil(checkpointGb * 1.2 + 10);
  }

  /** HF_TOKEN (optional Secret), the cache, and what a read-only root filesystem needs. */
  private hfEnv(secret: kplus.ISecret, key: string): Record<string, kplus.EnvValue> {
    const v = kplus.EnvValue.fromValue;
    return {
      HF_TOKEN: kplus.EnvValue.fromSecretValue({ secret, key }, { optional: true }),
      HF_HOME: v(MODEL_CACHE_PATH),
      HOME: v("/tmp"),
      // The image has no passwd entry for uid 1000: getpass.getuser() (torch.compile's cache)
      // raises KeyError unless one of these is set.
      USER: v("vllm"),
      LOGNAME: v("vllm"),
      // Every cache vLLM, torch.compile and Triton write goes under the writable /tmp.
      XDG_CACHE_HOME: v("/tmp/.cache"),
      VLLM_CACHE_ROOT: v("/tmp/vllm"),
      TORCHINDUCTOR_CACHE_DIR: v("/tmp/torchinductor"),
      TRITON_CACHE_DIR: v("/tmp/triton"),
    };
  }

  /** GPU nodes of the chosen type (or the given labels), tolerating their taints. */
  private schedule(p: ResolvedProps): void {
    if (!p.nodeSelector) {
      this.deployment.scheduling.attract(
        kplus.Node.labeled(kplus.NodeLabelQuery.in("nvidia.com/gpu.product", [...GPUS[p.gpu].productLabels])),
      );
    }
    schedule(this.deployment, p.nodeSelector, p.tolerations);
  }

  /**
   * cdk8s-plus has no field for extended resources, so `nvidia.com/gpu` goes
   * in through a JSON patch (as do topology spread constraints and the pod
   * options cdk8s-plus lacks). Extended resources need limits (requests default to them).
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
