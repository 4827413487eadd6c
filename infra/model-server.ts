import { createHash } from "node:crypto";
import { ApiObject, Duration, JsonPatch, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { type Dtype, GPUS, type GpuType, MODELS, type ModelId, sizingProblem } from "./catalogue.ts";
import {
  COMPONENT_LABEL,
  CONTAINER_SECURITY,
  type Component,
  componentLabels,
  imageReference,
  POD_SECURITY,
  selectorLabels,
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
  /** `sha256:…` of `image`, appended as `image@digest`. @default - the tag alone */
  readonly imageDigest?: string;
  /** Hugging Face revision (commit, tag or branch) downloaded and served. @default "main" */
  readonly revision?: string;
  /** vLLM `--shutdown-timeout`: how long in-flight generations may finish after SIGTERM. @default 300 */
  readonly shutdownTimeoutSeconds?: number;
  /** preStop sleep, so the Service stops routing before SIGTERM. @default 10 */
  readonly preStopSeconds?: number;
  /** Extra replicas during a rollout (0: replace one at a time, needs no spare GPU node). @default 1 */
  readonly rolloutMaxSurge?: number;
  /** Secret with the key vLLM requires as Bearer token (VLLM_API_KEY). @default - no key */
  readonly apiKeySecret?: { readonly name: string; readonly key: string };
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

    const shutdownTimeout = props.shutdownTimeoutSeconds ?? 300;
    const preStop = props.preStopSeconds ?? 10;
    const maxSurge = props.rolloutMaxSurge ?? 1;
    this.deployment = new kplus.Deployment(this, "deployment", {
      metadata: { name: props.name, labels: this.podLabels },
      podMetadata: { labels: this.podLabels },
      // Select on our own stable labels, not cdk8s's hash of the construct path
      // (a selector is immutable: a renamed construct would break `kubectl apply`).
      select: false,
      replicas,
      serviceAccount: this.serviceAccount,
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
      // preStop, then vLLM drains for up to --shutdown-timeout, then exits.
      terminationGracePeriod: Duration.seconds(preStop + shutdownTimeout + GRACE_MARGIN_SECONDS),
      // With a surge, a serving replica never goes before its successor is ready; that needs a
      // spare node of the same GPUs. rolloutMaxSurge 0 replaces one replica at a time instead.
      strategy: kplus.DeploymentStrategy.rollingUpdate({
        maxSurge: kplus.PercentOrAbsolute.absolute(maxSurge),
        maxUnavailable: kplus.PercentOrAbsolute.absolute(maxSurge === 0 ? 1 : 0),
      }),
      // A model load takes minutes; the rollout must not give up first.
      progressDeadline: Duration.seconds(this.modelLoadSeconds + 600),
    });
    this.deployment.select(kplus.LabelSelector.of({ labels: selectorLabels(this.podLabels) }));

    const revision = props.revision ?? "main";
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
      // Weights, tokenizer and remote code all at the staged revision: unset, the last two would
      // ask for the default branch, which an offline server may not have.
      "--revision",
      revision,
      "--tokenizer-revision",
      revision,
      "--code-revision",
      revision,
      // Drain: on SIGTERM, refuse new requests and let in-flight ones finish for up to this long.
      "--shutdown-timeout",
      String(shutdownTimeout),
      ...("reasoningParser" in spec && spec.reasoningParser
        ? ["--reasoning-parser", spec.reasoningParser]
        : []),
      ...("vllmArgs" in spec && spec.vllmArgs ? spec.vllmArgs : []),
      ...(props.extraArgs ?? []),
    ];

    const hf = props.hfTokenSecret ?? { name: "hf-token", key: "token" };
    const hfSecret = kplus.Secret.fromSecretName(this, "hf-token", hf.name);
    const image = imageReference(props.image ?? VLLM_IMAGE, props.imageDigest);
    const hfEnv = this.hfEnv(hfSecret, hf.key);
    const container = this.deployment.addContainer({
      name: "vllm",
      image,
      imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      // The image's entrypoint changed across vLLM releases; the module path has not.
      command: ["python3", "-m", "vllm.entrypoints.openai.api_server"],
      args,
      ports: [{ name: "http", number: MODEL_SERVER_PORT }],
      envVariables: {
        ...hfEnv,
        // The weights are staged before the server starts (download Job or init container);
        // the server never reaches the Hub, so a Hub outage or a moved branch cannot change what it serves.
        HF_HUB_OFFLINE: kplus.EnvValue.fromValue("1"),
        VLLM_NO_USAGE_STATS: kplus.EnvValue.fromValue("1"),
        ...(props.apiKeySecret
          ? {
              // vLLM's --api-key reads VLLM_API_KEY; /health and /metrics stay open.
              VLLM_API_KEY: kplus.EnvValue.fromSecretValue({
                secret: kplus.Secret.fromSecretName(this, "api-key", props.apiKeySecret.name),
                key: props.apiKeySecret.key,
              }),
            }
          : {}),
      },
      lifecycle: {
        // Endpoints drop a terminating pod asynchronously; keep serving while they catch up.
        preStop: kplus.Handler.fromCommand(["sleep", String(preStop)]),
      },
      resources: {
        cpu: { request: kplus.Cpu.units(cpu), limit: kplus.Cpu.units(cpu) },
        memory: { request: Size.gibibytes(memoryGi), limit: Size.gibibytes(memoryGi) },
        ephemeralStorage: {
          request: Size.gibibytes(
            TMP_GI + (cacheType === "emptyDir" ? this.cacheSizeGi(props.model, cache) : 0),
          ),
        },
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
    const tmp = kplus.Volume.fromEmptyDir(this, "tmp", "tmp", { sizeLimit: Size.gibibytes(TMP_GI) });
    container.mount("/tmp", tmp);
    const cacheVolume = this.cacheVolume(props.name, props.model, cacheType, cache, accessMode);
    container.mount(MODEL_CACHE_PATH, cacheVolume);

    // The weights, at the pinned revision, before vLLM starts: on a per-pod emptyDir (or a
    // ReadWriteOnce claim, which a Job on another node could not mount) this container downloads
    // them; on a ReadWriteMany claim the download Job does, once for every replica, and this
    // container waits for the Job's marker.
    const shared = cacheType === "pvc" && accessMode === "ReadWriteMany";
    const hash = createHash("sha256").update(`${spec.huggingFaceId}@${revision}`).digest("hex").slice(0, 8);
    const marker = `.deepqueue-staged-${hash}`;
    const download = downloadCommand(spec.huggingFaceId, revision, marker);
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
        { path: "/tmp", volume: tmp },
        { path: MODEL_CACHE_PATH, volume: cacheVolume },
      ],
    });
    if (shared) {
      // Named after model and revision: a Job's pod template is immutable, so a new revision is a new Job.
      this.downloadJob = new kplus.Job(this, "download", {
        metadata: { name: `${props.name}-download-${hash}`, labels: this.podLabels },
        podMetadata: {
          labels: { ...this.podLabels, [COMPONENT_LABEL]: `${component}-download` satisfies Component },
        },
        serviceAccount: this.serviceAccount,
        automountServiceAccountToken: false,
        securityContext: POD_SECURITY,
        backoffLimit: 6,
        // ~690 GB for V3/R1: at the 50-100 MB/s an EFS file system may sustain, hours. hf download resumes on retry.
        activeDeadline: Duration.seconds(Math.max(this.modelLoadSeconds, 12 * 3600)),
      });
      const downloader = this.downloadJob.addContainer({
        name: "download",
        image,
        imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
        command: download,
        envVariables: hfEnv,
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
      downloader.mount(MODEL_CACHE_PATH, cacheVolume);
    }

    this.schedule(props);
    this.addGpuLimit(tp);
    // Spread replicas over zones and nodes where the cluster allows (never blocks scheduling).
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

    this.service = new kplus.Service(this, "service", {
      metadata: { name: props.name, labels: this.podLabels },
      ports: [{ name: "http", port: MODEL_SERVER_PORT, targetPort: MODEL_SERVER_PORT }],
    });
    for (const [k, v] of Object.entries(selectorLabels(this.podLabels))) this.service.selectLabel(k, v);

    new kplus.k8s.KubePodDisruptionBudget(this, "pdb", {
      metadata: { name: props.name, labels: this.podLabels },
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

  private cacheVolume(
    name: string,
    model: ModelId,
    type: "pvc" | "emptyDir",
    cache: ModelCacheOptions,
    accessMode: "ReadWriteMany" | "ReadWriteOnce",
  ): kplus.Volume {
    const sizeGi = this.cacheSizeGi(model, cache);
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

  private nodeQuery(props: ModelServerProps): kplus.NodeLabelQuery[] {
    return props.nodeSelector
      ? Object.entries(props.nodeSelector).map(([k, v]) => kplus.NodeLabelQuery.is(k, v))
      : [kplus.NodeLabelQuery.in("nvidia.com/gpu.product", [...GPUS[props.gpu].productLabels])];
  }

  private tolerations(props: ModelServerProps): kplus.TaintedNode[] {
    const effects = {
      NoSchedule: kplus.TaintEffect.NO_SCHEDULE,
      PreferNoSchedule: kplus.TaintEffect.PREFER_NO_SCHEDULE,
      NoExecute: kplus.TaintEffect.NO_EXECUTE,
    } as const;
    const tolerations = props.tolerations ?? [
      { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" } as const,
    ];
    return tolerations.map((t) =>
      kplus.Node.tainted(
        t.operator === "Equal"
          ? kplus.NodeTaintQuery.is(t.key, t.value ?? "", { effect: effects[t.effect] })
          : kplus.NodeTaintQuery.exists(t.key, { effect: effects[t.effect] }),
      ),
    );
  }

  private schedule(props: ModelServerProps): void {
    this.deployment.scheduling.attract(kplus.Node.labeled(...this.nodeQuery(props)));
    for (const t of this.tolerations(props)) this.deployment.scheduling.tolerate(t);
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
