import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Testing } from "cdk8s";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { VLLM_METRICS } from "../functions/shared/vllm-metrics.ts";
import { DeepqueueChart } from "./chart.ts";
import { loadValuesFile, PROFILES, parseValues, profilePath, type ValuesInput } from "./config.ts";
import { synth } from "./main.ts";
import { validateManifests } from "./manifest-schemas.ts";
import { ModelServer } from "./model-server.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form JSON; each assertion names the path it reads.
type Manifest = any;

function manifests(input: ValuesInput = {}): Manifest[] {
  const app = Testing.app();
  const chart = new DeepqueueChart(app, "deepqueue", { values: parseValues(input) });
  return Testing.synth(chart);
}

function find(objects: Manifest[], kind: string, name: string): Manifest {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found)
    throw new Error(
      `no ${kind} ${name} among ${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(", ")}`,
    );
  return found;
}

function podSpec(o: Manifest): Manifest {
  if (o.kind === "CronJob") return o.spec.jobTemplate.spec.template.spec;
  return o.spec.template.spec;
}

describe("model server", () => {
  it("asks for the GPUs through nvidia.com/gpu limits, one per tensor-parallel rank", () => {
    const one = find(manifests(), "Deployment", "deepqueue-model");
    const c = podSpec(one).containers[0];
    expect(c.resources.limits["nvidia.com/gpu"]).toBe(1);
    expect(c.resources.requests["nvidia.com/gpu"]).toBe(1);

    const large = find(manifests(loadValuesFile(profilePath("large"))), "Deployment", "deepqueue-model");
    const lc = podSpec(large).containers[0];
    expect(lc.resources.limits["nvidia.com/gpu"]).toBe(2);
    expect(lc.args.join(" ")).toContain("--tensor-parallel-size 2");
  });

  it("schedules onto the chosen GPU's nodes and tolerates the GPU taint", () => {
    const spec = podSpec(find(manifests({ modelServer: { gpu: "H100" } }), "Deployment", "deepqueue-model"));
    expect(
      spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms,
    ).toEqual([
      {
        matchExpressions: [
          {
            key: "nvidia.com/gpu.product",
            operator: "In",
            values: ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"],
          },
        ],
      },
    ]);
    expect(spec.tolerations).toEqual([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);

    const custom = podSpec(
      find(
        manifests({ modelServer: { nodeSelector: { "karpenter.k8s.aws/instance-gpu-name": "a100" } } }),
        "Deployment",
        "deepqueue-model",
      ),
    );
    expect(
      custom.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms,
    ).toEqual([
      {
        matchExpressions: [{ key: "karpenter.k8s.aws/instance-gpu-name", operator: "In", values: ["a100"] }],
      },
    ]);
  });

  it("runs the vLLM OpenAI server with the model, name, context, dtype and memory share", () => {
    const c = podSpec(find(manifests(), "Deployment", "deepqueue-model")).containers[0];
    expect(c.image).toMatch(/^vllm\/vllm-openai:v\d+\.\d+\.\d+$/);
    expect(c.args).toEqual([
      "--model",
      "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
      "--served-model-name",
      "deepseek-r1-distill-qwen-7b",
      "--host",
      "0.0.0.0",
      "--port",
      "8000",
      "--max-model-len",
      "4096",
      "--dtype",
      "bfloat16",
      "--tensor-parallel-size",
      "1",
      "--gpu-memory-utilization",
      "0.9",
      "--revision",
      "main",
      "--tokenizer-revision",
      "main",
      "--code-revision",
      "main",
      "--shutdown-timeout",
      "300",
      "--reasoning-parser",
      "deepseek_r1",
    ]);
    expect(c.env).toContainEqual({
      name: "HF_TOKEN",
      valueFrom: { secretKeyRef: { name: "hf-token", key: "token", optional: true } },
    });
  });

  it("quantizes to FP8 only when the checkpoint is not FP8 already", () => {
    const argsOf = (input: ValuesInput) =>
      podSpec(find(manifests(input), "Deployment", "deepqueue-model")).containers[0].args.join(" ");
    expect(argsOf({ modelServer: { dtype: "fp8" } })).toContain("--dtype bfloat16 --quantization fp8");
    expect(argsOf(loadValuesFile(profilePath("frontier")))).not.toContain("--quantization");
  });

  it("gives startup minutes to load the model, and reads /health", () => {
    const c = podSpec(
      find(manifests({ modelServer: { modelLoadSeconds: 1200 } }), "Deployment", "deepqueue-model"),
    ).containers[0];
    expect(c.startupProbe.httpGet).toMatchObject({ path: "/health", port: 8000 });
    expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).toBe(1200);
    expect(c.readinessProbe.httpGet).toMatchObject({ path: "/health", port: 8000 });
    expect(c.livenessProbe.httpGet).toMatchObject({ path: "/health", port: 8000 });
  });

  it("mounts a memory-backed /dev/shm and the model cache claim", () => {
    const objects = manifests(loadValuesFile(profilePath("large")));
    const spec = podSpec(find(objects, "Deployment", "deepqueue-model"));
    const mounts = Object.fromEntries(
      spec.containers[0].volumeMounts.map((m: Manifest) => [m.mountPath, m.name]),
    );
    const volumes = Object.fromEntries(spec.volumes.map((v: Manifest) => [v.name, v]));
    expect(volumes[mounts["/dev/shm"]].emptyDir).toEqual({ medium: "Memory", sizeLimit: "6144Mi" });
    expect(volumes[mounts["/model-cache"]].persistentVolumeClaim.claimName).toBe("deepqueue-model-cache");
    const claim = find(objects, "PersistentVolumeClaim", "deepqueue-model-cache");
    expect(claim.spec.accessModes).toEqual(["ReadWriteMany"]);
    expect(claim.spec.resources.requests.storage).toBe("171Gi"); // 134 GB of BF16 weights × 1.2 + 10
  });

  it("exposes port 8000 through a Service and limits disruptions to one replica", () => {
    const objects = manifests();
    const deployment = find(objects, "Deployment", "deepqueue-model");
    const service = find(objects, "Service", "deepqueue-model");
    expect(service.spec.ports).toEqual([{ name: "http", port: 8000, targetPort: 8000 }]);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    const pdb = find(objects, "PodDisruptionBudget", "deepqueue-model");
    expect(pdb.spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: deployment.spec.selector.matchLabels },
      unhealthyPodEvictionPolicy: "AlwaysAllow",
    });
  });

  it("leaves replicas to KEDA", () => {
    for (const o of manifests().filter((m) => m.kind === "Deployment"))
      expect(o.spec.replicas).toBeUndefined();
  });

  it("throws, naming the suggestion, when a construct is given a model that does not fit", () => {
    const chart = Testing.chart();
    expect(
      () =>
        new ModelServer(chart, "model-server", {
          name: "big",
          prefix: "deepqueue",
          model: "deepseek-llm-67b-chat",
          gpu: "A100-80GB",
          dtype: "float16",
        }),
    ).toThrow(/ModelServer big: .*does not fit 1 × A100-80GB.*Would fit: 2 × A100-80GB/);
  });
});

describe("KEDA", () => {
  const scaledObject = (objects: Manifest[], name: string) => find(objects, "ScaledObject", name);

  it("scales the model server on the inference queues, p95 TTFT and waiting requests", () => {
    const so = scaledObject(
      manifests({ aws: { accountId: "123456789012", region: "eu-west-1" } }),
      "deepqueue-model",
    );
    expect(so.spec.scaleTargetRef).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "deepqueue-model",
    });
    const [queue, ttft, waiting] = so.spec.triggers;
    expect(queue).toMatchObject({
      type: "aws-sqs-queue",
      authenticationRef: { name: "deepqueue-aws" },
      metadata: {
        queueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/deepqueue-inference",
        awsRegion: "eu-west-1",
        queueLength: "32",
      },
    });
    expect(ttft.type).toBe("prometheus");
    expect(ttft.metadata.query).toContain(`${VLLM_METRICS.timeToFirstTokenSeconds}_bucket`);
    expect(ttft.metadata.query).toContain("histogram_quantile(0.95");
    // +Inf (beyond the top bucket) would be an error to KEDA, not a reason to scale out.
    expect(ttft.metadata.query).toMatch(
      /^clamp_max\(histogram_quantile\(0\.95, .*, 86400\) > 0 or 0 \* sum\(/,
    );
    expect(ttft.metadata.query).toContain('model_name="deepseek-r1-distill-qwen-7b",namespace="deepqueue"');
    expect(ttft.metadata).toMatchObject({
      threshold: "0.5",
      serverAddress: "http://prometheus-operated.monitoring.svc:9090",
    });
    expect(waiting.metadata.query).toBe(
      `sum(${VLLM_METRICS.numRequestsWaiting}{model_name="deepseek-r1-distill-qwen-7b",namespace="deepqueue"})`,
    );
    expect(waiting.metadata.threshold).toBe("8");
    // Batch lines need GPUs too: the batch lane's depth counts like the interactive queue's.
    expect(so.spec.triggers[3]).toEqual({
      ...queue,
      name: "inference-batch-queue",
      metadata: {
        ...queue.metadata,
        queueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/deepqueue-inference-batch",
      },
    });
  });

  it("bounds the model server's replicas, waits out a model load and scales GPUs down slowly", () => {
    const so = scaledObject(manifests(), "deepqueue-model");
    expect(so.spec).toMatchObject({ minReplicaCount: 2, maxReplicaCount: 10, cooldownPeriod: 1800 });
    expect(so.spec.fallback).toEqual({ replicas: 2, failureThreshold: 3 });
    const behavior = so.spec.advanced.horizontalPodAutoscalerConfig.behavior;
    expect(behavior.scaleDown).toEqual({
      stabilizationWindowSeconds: 600,
      selectPolicy: "Min",
      policies: [{ type: "Pods", value: 1, periodSeconds: 300 }],
    });
    // KEDA refuses fallback unless every trigger is AverageValue.
    for (const t of so.spec.triggers) expect(t.metricType).toBe("AverageValue");
  });

  it("scales each worker on its own queue", () => {
    const objects = manifests({
      functions: { cache: { queueLength: 7, activationQueueLength: 2, scaleOnInFlight: false } },
    });
    const expected = {
      cache: ["deepqueue-requests"],
      batcher: ["deepqueue-inference", "deepqueue-inference-batch"],
      deliver: ["deepqueue-delivery"],
    };
    for (const [worker, queues] of Object.entries(expected)) {
      const so = scaledObject(objects, `deepqueue-${worker}`);
      expect(so.spec.scaleTargetRef.name).toBe(`deepqueue-${worker}`);
      expect(so.spec.triggers.map((t: Manifest) => [t.type, t.metadata.queueURL])).toEqual(
        queues.map((queue) => ["aws-sqs-queue", queue]),
      );
    }
    // The batch lane's trigger has the batcher's settings, under its own name.
    const [interactive, batch] = scaledObject(objects, "deepqueue-batcher").spec.triggers;
    expect(batch).toEqual({
      ...interactive,
      name: "inference-batch",
      metadata: { ...interactive.metadata, queueURL: "deepqueue-inference-batch" },
    });
    expect(scaledObject(objects, "deepqueue-cache").spec.triggers[0].metadata).toMatchObject({
      queueLength: "7",
      activationQueueLength: "2",
      scaleOnInFlight: "false",
    });
    expect(scaledObject(objects, "deepqueue-batcher").spec.triggers[0].metadata.queueLength).toBe("64");
  });

  it("bounds worker replicas, scale to zero included", () => {
    const objects = manifests(loadValuesFile(profilePath("dev-small")));
    const so = scaledObject(objects, "deepqueue-deliver");
    expect(so.spec).toMatchObject({ minReplicaCount: 0, maxReplicaCount: 2 });
    expect(so.spec.fallback.replicas).toBe(1);
  });

  it("authenticates to SQS with AWS pod identity", () => {
    expect(find(manifests(), "TriggerAuthentication", "deepqueue-aws").spec).toEqual({
      podIdentity: { provider: "aws", identityOwner: "keda" },
    });
    const role = "arn:aws:iam::123456789012:role/keda-sqs";
    expect(
      find(manifests({ aws: { kedaRoleArn: role } }), "TriggerAuthentication", "deepqueue-aws").spec,
    ).toEqual({
      podIdentity: { provider: "aws", roleArn: role },
    });
  });
});

describe("functions", () => {
  it("runs ingest as a Knative Service autoscaled on concurrency", () => {
    const ksvc = find(manifests(), "Service", "deepqueue-ingest");
    expect(ksvc.apiVersion).toBe("serving.knative.dev/v1");
    expect(ksvc.spec.template.metadata.annotations).toEqual({
      "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
      "autoscaling.knative.dev/metric": "concurrency",
      "autoscaling.knative.dev/target": "70",
      "autoscaling.knative.dev/target-utilization-percentage": "100",
      "autoscaling.knative.dev/min-scale": "1",
      "autoscaling.knative.dev/max-scale": "20",
    });
    const spec = ksvc.spec.template.spec;
    expect(spec).toMatchObject({
      containerConcurrency: 100,
      // A chat completion waits for its answer (chat deadline 120 s + 15).
      timeoutSeconds: 150,
      serviceAccountName: "deepqueue-ingest",
    });
    const c = spec.containers[0];
    expect(c.command).toEqual(["deepqueue", "serve", "ingest"]);
    expect(c.ports).toEqual([{ name: "http1", containerPort: 8080 }]);
    expect(c.readinessProbe.httpGet.path).toBe("/healthz");
    expect(c.envFrom).toEqual([{ configMapRef: { name: "deepqueue-config" } }]);
  });

  it("runs each worker with `deepqueue serve <name>`, /healthz on 9090 and a grace period longer than its drain", () => {
    const objects = manifests({ functions: { batcher: { drainSeconds: 200 } } });
    for (const worker of ["cache", "batcher", "deliver"]) {
      const spec = podSpec(find(objects, "Deployment", `deepqueue-${worker}`));
      const c = spec.containers[0];
      expect(c.command).toEqual(["deepqueue", "serve", worker]);
      expect(c.ports).toEqual([{ name: "metrics", containerPort: 9090 }]);
      expect(c.readinessProbe.httpGet).toMatchObject({ path: "/healthz", port: 9090 });
      expect(c.livenessProbe.tcpSocket).toEqual({ port: 9090 });
      expect(spec.serviceAccountName).toBe(`deepqueue-${worker}`);
    }
    expect(podSpec(find(objects, "Deployment", "deepqueue-batcher")).terminationGracePeriodSeconds).toBe(215);
  });

  it("runs the reconciler on a schedule, never twice at once, and bootstrap once when asked", () => {
    const cron = find(manifests({ bootstrap: { enabled: true } }), "CronJob", "deepqueue-reconciler");
    expect(cron.spec.schedule).toBe("*/5 * * * *");
    expect(cron.spec.concurrencyPolicy).toBe("Forbid");
    expect(podSpec(cron).containers[0].command).toEqual(["deepqueue", "reconcile", "--once", "--json"]);
    const job = find(manifests({ bootstrap: { enabled: true } }), "Job", "deepqueue-bootstrap");
    expect(job.spec.template.spec.containers[0].command).toEqual(["deepqueue", "bootstrap"]);
    expect(manifests().some((o) => o.kind === "Job" && o.metadata.name === "deepqueue-bootstrap")).toBe(
      false,
    );
  });

  it("wires every function to the model Service through one ConfigMap (docs/api.md#configuration)", () => {
    const cm = find(
      manifests({ prefix: "dq", logLevel: "warn", aws: { region: "eu-central-1" } }),
      "ConfigMap",
      "dq-config",
    );
    expect(cm.data).toEqual({
      AWS_REGION: "eu-central-1",
      DEEPQUEUE_PREFIX: "dq",
      INFERENCE_URL: "http://dq-model:8000/v1",
      DEEPQUEUE_MODEL: "deepseek-r1-distill-qwen-7b",
      DEEPQUEUE_MAX_MODEL_LEN: "4096",
      DEEPQUEUE_WORKER_METRICS_PORT: "9090",
      LOG_LEVEL: "warn",
    });
    const withFallback = find(
      manifests(loadValuesFile(profilePath("large"))),
      "ConfigMap",
      "deepqueue-config",
    );
    expect(withFallback.data).toMatchObject({
      DEEPQUEUE_FALLBACK_MODEL: "deepseek-r1-distill-qwen-7b",
      DEEPQUEUE_FALLBACK_INFERENCE_URL: "http://deepqueue-fallback-model:8000/v1",
    });
  });

  it("passes tracing values to every function as the standard OTEL_* variables; none without an endpoint", () => {
    const objects = manifests({
      tracing: {
        endpoint: "http://otel-collector.observability:4318",
        protocol: "http/json",
        sampler: "parentbased_traceidratio",
        samplerArg: 0.25,
        resourceAttributes: { "deployment.environment.name": "prod eu" },
      },
    });
    const cm = find(objects, "ConfigMap", "deepqueue-config");
    expect(cm.data).toMatchObject({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel-collector.observability:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=prod%20eu",
    });
    // service.name is left to each function (deepqueue-<function>) unless set.
    expect(cm.data.OTEL_SERVICE_NAME).toBeUndefined();
    // Every function reads that ConfigMap.
    const ingest = find(objects, "Service", "deepqueue-ingest");
    expect(ingest.spec.template.spec.containers[0].envFrom).toEqual([
      { configMapRef: { name: "deepqueue-config" } },
    ]);
    for (const worker of ["cache", "batcher", "deliver"]) {
      expect(podSpec(find(objects, "Deployment", `deepqueue-${worker}`)).containers[0].envFrom).toEqual([
        { configMapRef: { name: "deepqueue-config" } },
      ]);
    }
    const named = find(
      manifests({ tracing: { endpoint: "http://c:4317", protocol: "grpc", serviceName: "deepqueue" } }),
      "ConfigMap",
      "deepqueue-config",
    );
    expect(named.data).toMatchObject({ OTEL_SERVICE_NAME: "deepqueue", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    const off = find(manifests({ tracing: { sampler: "always_on" } }), "ConfigMap", "deepqueue-config");
    expect(Object.keys(off.data).filter((k) => k.startsWith("OTEL_"))).toEqual([]);
    expect(() => parseValues({ tracing: { endpoint: "http://c:4318", protocol: "thrift" } })).toThrow(
      /tracing\.protocol/,
    );
  });

  it("annotates the functions' ServiceAccounts with their IAM role, and not the model server's", () => {
    const role = "arn:aws:iam::123456789012:role/deepqueue";
    const own = "arn:aws:iam::123456789012:role/deepqueue-deliver";
    const objects = manifests({ aws: { roleArn: role }, functions: { deliver: { roleArn: own } } });
    const roleOf = (name: string) =>
      find(objects, "ServiceAccount", name).metadata.annotations?.["eks.amazonaws.com/role-arn"];
    expect(roleOf("deepqueue-ingest")).toBe(role);
    expect(roleOf("deepqueue-cache")).toBe(role);
    expect(roleOf("deepqueue-deliver")).toBe(own);
    expect(roleOf("deepqueue-reconciler")).toBe(role);
    expect(roleOf("deepqueue-model")).toBeUndefined();
  });
});

describe("security", () => {
  it("runs every container non-root, read-only, without privilege escalation, all capabilities dropped", () => {
    const objects = manifests(loadValuesFile(profilePath("frontier")));
    const containers = objects.flatMap((o) => {
      if (o.kind === "Deployment" || o.kind === "Job" || o.kind === "CronJob")
        return [...podSpec(o).containers, ...(podSpec(o).initContainers ?? [])];
      if (o.kind === "Service" && o.apiVersion === "serving.knative.dev/v1")
        return o.spec.template.spec.containers;
      return [];
    });
    // model, fallback, their weights init containers, the download Job, ingest, 4 workers (cache, batcher, deliver, batches), reconciler
    expect(containers.length).toBe(11);
    for (const c of containers) {
      expect(c.securityContext, c.name).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(c.securityContext.runAsUser, c.name).toBeGreaterThan(0);
      expect(c.resources.requests, c.name).toBeDefined();
      expect(c.resources.limits.memory, c.name).toBeDefined();
    }
  });

  it("lets only the batcher, the cache worker (summaries) and Prometheus reach the model servers", () => {
    const policy = find(manifests(), "NetworkPolicy", "deepqueue-model-servers");
    expect(policy.spec.podSelector.matchExpressions).toEqual([
      {
        key: "app.kubernetes.io/component",
        operator: "In",
        values: ["model-server", "fallback-model-server"],
      },
    ]);
    expect(policy.spec.ingress).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: { "app.kubernetes.io/instance": "deepqueue" },
              matchExpressions: [
                { key: "app.kubernetes.io/component", operator: "In", values: ["batcher", "cache"] },
              ],
            },
          },
        ],
        ports: [{ protocol: "TCP", port: 8000 }],
      },
      {
        from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }],
        ports: [{ protocol: "TCP", port: 8000 }],
      },
    ]);
  });

  it("selects pods that really carry the labels the policies name", () => {
    const objects = manifests(loadValuesFile(profilePath("large")));
    const labelsOf = (kind: string, name: string) => find(objects, kind, name).spec.template.metadata.labels;
    expect(labelsOf("Deployment", "deepqueue-batcher")).toMatchObject({
      "app.kubernetes.io/component": "batcher",
      "app.kubernetes.io/instance": "deepqueue",
    });
    expect(labelsOf("Deployment", "deepqueue-model")["app.kubernetes.io/component"]).toBe("model-server");
    expect(labelsOf("Deployment", "deepqueue-fallback-model")["app.kubernetes.io/component"]).toBe(
      "fallback-model-server",
    );
    const ingestPolicy = find(objects, "NetworkPolicy", "deepqueue-ingest");
    expect(labelsOf("Service", "deepqueue-ingest")).toMatchObject(ingestPolicy.spec.podSelector.matchLabels);
  });

  it("lets only the ingress layer (and Prometheus) reach ingest", () => {
    const policy = find(
      manifests({ networkPolicies: { ingressNamespaces: ["istio-system"] } }),
      "NetworkPolicy",
      "deepqueue-ingest",
    );
    expect(policy.spec.ingress[0].from).toEqual([
      {
        namespaceSelector: {
          matchExpressions: [
            { key: "kubernetes.io/metadata.name", operator: "In", values: ["istio-system"] },
          ],
        },
      },
    ]);
  });
});

describe("monitoring", () => {
  it("emits PodMonitors for vLLM's port and the workers' metrics port, labelled for the Prometheus", () => {
    const objects = manifests({ monitoring: { podMonitors: true, podMonitorLabels: { release: "kps" } } });
    const model = find(objects, "PodMonitor", "deepqueue-model-servers");
    expect(model.metadata.labels).toEqual({ release: "kps" });
    expect(model.spec.podMetricsEndpoints).toEqual([{ port: "http", path: "/metrics", interval: "30s" }]);
    const workers = find(objects, "PodMonitor", "deepqueue-workers");
    expect(workers.spec.podMetricsEndpoints[0].port).toBe("metrics");
    expect(manifests().some((o) => o.kind === "PodMonitor")).toBe(false);
  });
});

describe("a first apply on a real cluster", () => {
  const model = (input: ValuesInput = {}) => find(manifests(input), "Deployment", "deepqueue-model");
  const env = (c: Manifest) =>
    Object.fromEntries(c.env.filter((e: Manifest) => "value" in e).map((e: Manifest) => [e.name, e.value]));

  it("vLLM as uid 1000 with no passwd entry: USER, LOGNAME and every cache directory set, under /tmp", () => {
    const spec = podSpec(model());
    for (const c of [spec.containers[0], spec.initContainers[0]]) {
      expect(env(c), c.name).toMatchObject({
        HOME: "/tmp",
        USER: "vllm",
        LOGNAME: "vllm",
        XDG_CACHE_HOME: "/tmp/.cache",
        VLLM_CACHE_ROOT: "/tmp/vllm",
        TORCHINDUCTOR_CACHE_DIR: "/tmp/torchinductor",
        TRITON_CACHE_DIR: "/tmp/triton",
      });
    }
    expect(spec.containers[0].volumeMounts.map((m: Manifest) => m.mountPath)).toContain("/tmp");
  });

  it("workers' memory covers their measured peak RSS (cache 247, batcher 336, deliver 104 MiB), limits twice that", () => {
    const expected = { cache: ["384Mi", "768Mi"], batcher: ["512Mi", "1024Mi"], deliver: ["192Mi", "384Mi"] };
    for (const [worker, [request, limit]] of Object.entries(expected)) {
      const c = podSpec(find(manifests(), "Deployment", `deepqueue-${worker}`)).containers[0];
      expect(c.resources.requests.memory, worker).toBe(request);
      expect(c.resources.limits.memory, worker).toBe(limit);
    }
    expect(() =>
      parseValues({ functions: { batcher: { memoryRequestMi: 2048, memoryLimitMi: 1024 } } }),
    ).toThrow("functions.batcher.memoryLimitMi: memoryLimitMi (1024) is below memoryRequestMi (2048)");
  });

  it.each(PROFILES)(
    "%s: one message wakes a worker scaled to zero (activation is 'more than')",
    (profile) => {
      const objects = manifests(loadValuesFile(profilePath(profile)));
      for (const so of objects.filter((o) => o.kind === "ScaledObject")) {
        for (const t of so.spec.triggers.filter((t: Manifest) => t.type === "aws-sqs-queue")) {
          expect(t.metadata.activationQueueLength, so.metadata.name).toBe("0");
        }
      }
    },
  );

  it("drains on SIGTERM: a current vLLM with --shutdown-timeout, a preStop, and a grace period for both", () => {
    const spec = podSpec(model({ modelServer: { shutdownTimeoutSeconds: 600, preStopSeconds: 20 } }));
    const c = spec.containers[0];
    const [, minor] = /^vllm\/vllm-openai:v0\.(\d+)\.\d+$/.exec(c.image) ?? [];
    expect(Number(minor)).toBeGreaterThanOrEqual(29);
    expect(c.args.join(" ")).toContain("--shutdown-timeout 600");
    expect(c.lifecycle.preStop.exec.command).toEqual(["sleep", "20"]);
    expect(spec.terminationGracePeriodSeconds).toBe(20 + 600 + 15);
    const frontier = podSpec(
      find(manifests(loadValuesFile(profilePath("frontier"))), "Deployment", "deepqueue-model"),
    );
    expect(frontier.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(900);
  });

  it("stages the weights at a pinned revision before the server starts, and serves them offline", () => {
    const objects = manifests(loadValuesFile(profilePath("frontier")));
    const deployment = find(objects, "Deployment", "deepqueue-model");
    const job = objects.find(
      (o) => o.kind === "Job" && o.metadata.name.startsWith("deepqueue-model-download-"),
    );
    expect(job).toBeDefined();
    const download = job.spec.template.spec.containers[0];
    const [, , script, repo, revision] = download.command;
    expect([repo, revision]).toEqual(["deepseek-ai/DeepSeek-R1", "main"]);
    const marker = /touch "(\/model-cache\/\.deepqueue-staged-[0-9a-f]{8})"$/.exec(script)?.[1];
    expect(script).toMatch(/^hf download "\$0" --revision "\$1" && touch /);
    expect(marker).toBeDefined();
    expect(env(download).HF_HUB_OFFLINE).toBeUndefined();
    const claim = (spec: Manifest) =>
      spec.volumes.find((v: Manifest) => v.persistentVolumeClaim)?.persistentVolumeClaim.claimName;
    expect(claim(job.spec.template.spec)).toBe("deepqueue-model-cache");
    expect(claim(podSpec(deployment))).toBe("deepqueue-model-cache");
    // The server waits (in Init) until the Job has left its marker (a snapshot folder appears
    // before its files are complete), and never reaches the Hub.
    const [wait] = podSpec(deployment).initContainers;
    expect(wait.command[2]).toContain(`until [ -f "${marker}" ]`);
    expect(env(podSpec(deployment).containers[0]).HF_HUB_OFFLINE).toBe("1");
    // A new revision is a new Job (a Job's template is immutable).
    const other = manifests({
      ...(loadValuesFile(profilePath("frontier")) as unknown as ValuesInput),
      modelServer: { ...loadValuesFile(profilePath("frontier")).modelServer, revision: "0123abc" },
    }).find((o) => o.kind === "Job" && o.metadata.name.startsWith("deepqueue-model-download-"));
    expect(other.metadata.name).not.toBe(job.metadata.name);
    expect(other.spec.template.spec.containers[0].command).toContain("0123abc");
    expect(other.spec.template.spec.containers[0].command[2]).not.toContain(marker);
    // A per-pod emptyDir cache: the init container downloads, online; no Job.
    const fallback = find(objects, "Deployment", "deepqueue-fallback-model");
    const fetch = podSpec(fallback).initContainers[0];
    expect(fetch.command.slice(3)).toEqual(["deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "main"]);
    expect(env(fetch).HF_HUB_OFFLINE).toBeUndefined();
    expect(
      objects.some((o) => o.kind === "Job" && o.metadata.name.startsWith("deepqueue-fallback-model")),
    ).toBe(false);
    // A ReadWriteOnce claim (one replica): a Job on another node could not mount it; the init container downloads.
    const rwo = manifests({
      modelServer: {
        minReplicas: 1,
        maxReplicas: 1,
        cache: { type: "pvc", accessMode: "ReadWriteOnce", storageClass: "gp3" },
      },
    });
    expect(rwo.some((o) => o.kind === "Job")).toBe(false);
    expect(
      env(podSpec(find(rwo, "Deployment", "deepqueue-model")).initContainers[0]).HF_HUB_OFFLINE,
    ).toBeUndefined();
    // The Job needs no GPU node.
    expect(job.spec.template.spec.affinity).toBeUndefined();
    expect(job.spec.template.spec.tolerations).toBeUndefined();
  });

  it("names an RWX storage class for the cache claim, and chowns volumes only on a root mismatch", () => {
    const objects = manifests();
    expect(find(objects, "PersistentVolumeClaim", "deepqueue-model-cache").spec.storageClassName).toBe(
      "efs-sc",
    );
    for (const o of objects.filter((o) => ["Deployment", "Job", "CronJob"].includes(o.kind))) {
      expect(podSpec(o).securityContext.fsGroupChangePolicy, o.metadata.name).toBe("OnRootMismatch");
    }
  });

  it("parses R1's reasoning out of content, and runs V3/R1 with vLLM's recipe flags", () => {
    const args = (input: ValuesInput) => podSpec(model(input)).containers[0].args.join(" ");
    expect(args({})).toContain("--reasoning-parser deepseek_r1");
    expect(args(loadValuesFile(profilePath("large")))).not.toContain("--reasoning-parser");
    const frontier = args(loadValuesFile(profilePath("frontier")));
    expect(frontier).toContain("--reasoning-parser deepseek_r1");
    expect(frontier).toContain("--trust-remote-code");
    expect(frontier).toContain("--enable-expert-parallel");
  });

  it("a metric that is not scraped is an error (KEDA's fallback), not 0; PodMonitors carry the release label", () => {
    const so = find(manifests(), "ScaledObject", "deepqueue-model");
    for (const t of so.spec.triggers.filter((t: Manifest) => t.type === "prometheus")) {
      expect(t.metadata.ignoreNullValues).toBe("false");
      expect(t.metadata.query).not.toContain("vector(0)");
    }
    const monitors = manifests({ monitoring: { podMonitors: true } }).filter((o) => o.kind === "PodMonitor");
    for (const m of monitors) expect(m.metadata.labels.release).toBe("kube-prometheus-stack");
  });

  it("refuses HPA behaviour the HPA API refuses", () => {
    expect(() => parseValues({ modelServer: { scaling: { scaleDownPeriodSeconds: 1801 } } })).toThrow(
      "modelServer.scaling.scaleDownPeriodSeconds: the HPA API allows at most 1800 s",
    );
    expect(() => parseValues({ modelServer: { scaling: { scaleDownStabilizationSeconds: 3601 } } })).toThrow(
      "modelServer.scaling.scaleDownStabilizationSeconds: the HPA API allows at most 3600 s",
    );
  });

  it("pins images by digest when given one", () => {
    const d = `sha256:${"a".repeat(64)}`;
    const objects = manifests({ image: { digest: d }, modelServer: { imageDigest: d } });
    expect(podSpec(find(objects, "Deployment", "deepqueue-batcher")).containers[0].image).toBe(
      `ghcr.io/deepqueue/deepqueue:0.1.0@${d}`,
    );
    expect(podSpec(find(objects, "Deployment", "deepqueue-model")).containers[0].image).toMatch(
      /^vllm\/vllm-openai:v[\d.]+@sha256:a{64}$/,
    );
    expect(() => parseValues({ image: { digest: "latest" } })).toThrow("image.digest");
  });

  it("restricts egress: DNS, each other, HTTPS, EKS Pod Identity; webhooks only from deliver", () => {
    const objects = manifests();
    const egress = find(objects, "NetworkPolicy", "deepqueue-egress");
    expect(egress.spec.podSelector).toEqual({ matchLabels: { "app.kubernetes.io/instance": "deepqueue" } });
    expect(egress.spec.policyTypes).toEqual(["Egress"]);
    const ports = egress.spec.egress.flatMap((r: Manifest) =>
      (r.ports ?? []).map((p: Manifest) => `${p.protocol}/${p.port}`),
    );
    expect(ports).toEqual(["UDP/53", "TCP/53", "TCP/443", "TCP/80"]);
    const webhooks = find(objects, "NetworkPolicy", "deepqueue-deliver-webhooks");
    expect(webhooks.spec.podSelector.matchLabels["app.kubernetes.io/component"]).toBe("deliver");
    expect(
      manifests({ networkPolicies: { egress: false } }).some((o) => o.metadata.name === "deepqueue-egress"),
    ).toBe(false);
  });

  it("requires an API key on vLLM, read from a Secret by vLLM and by the model's clients only", () => {
    const objects = manifests();
    const secretRef = (c: Manifest, name: string) =>
      c.env.find((e: Manifest) => e.name === name)?.valueFrom?.secretKeyRef;
    expect(
      secretRef(podSpec(find(objects, "Deployment", "deepqueue-model")).containers[0], "VLLM_API_KEY"),
    ).toEqual({
      name: "inference-api-key",
      key: "key",
    });
    for (const w of ["batcher", "cache"]) {
      expect(
        secretRef(podSpec(find(objects, "Deployment", `deepqueue-${w}`)).containers[0], "INFERENCE_API_KEY"),
      ).toEqual({
        name: "inference-api-key",
        key: "key",
      });
    }
    expect(podSpec(find(objects, "Deployment", "deepqueue-deliver")).containers[0].env ?? []).toEqual([]);
    const off = podSpec(
      find(manifests({ inferenceApiKey: { enabled: false } }), "Deployment", "deepqueue-model"),
    );
    expect(secretRef(off.containers[0], "VLLM_API_KEY")).toBeUndefined();
  });

  it("spreads model replicas over zones and nodes, without blocking scheduling", () => {
    const spec = podSpec(model());
    expect(spec.topologySpreadConstraints.map((t: Manifest) => [t.topologyKey, t.whenUnsatisfiable])).toEqual(
      [
        ["topology.kubernetes.io/zone", "ScheduleAnyway"],
        ["kubernetes.io/hostname", "ScheduleAnyway"],
      ],
    );
  });

  it("requests ephemeral storage for every container that writes to an emptyDir", () => {
    const objects = manifests(loadValuesFile(profilePath("dev-small")));
    for (const o of objects.filter((o) => ["Deployment", "Job", "CronJob"].includes(o.kind))) {
      for (const c of podSpec(o).containers) {
        expect(c.resources.requests["ephemeral-storage"], `${o.metadata.name}/${c.name}`).toBeDefined();
      }
    }
    // dev-small's model cache is an emptyDir: 20 GiB /tmp + 15 GiB for the weights (1.78B × 2 bytes × 1.2 + 10).
    expect(
      podSpec(model(loadValuesFile(profilePath("dev-small")))).containers[0].resources.requests[
        "ephemeral-storage"
      ],
    ).toBe("35Gi");
  });

  it("frontier replaces one replica at a time: no spare 8 × H200 node is needed for a surge", () => {
    const frontier = find(
      manifests(loadValuesFile(profilePath("frontier"))),
      "Deployment",
      "deepqueue-model",
    );
    expect(frontier.spec.strategy.rollingUpdate).toEqual({ maxSurge: 0, maxUnavailable: 1 });
    expect(model().spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
  });

  it("selects pods by stable labels, not cdk8s's hash of the construct path", () => {
    const objects = manifests();
    for (const o of objects) {
      const selector =
        o.kind === "Deployment"
          ? o.spec.selector.matchLabels
          : o.kind === "Service" && o.apiVersion === "v1"
            ? o.spec.selector
            : undefined;
      if (!selector) continue;
      expect(Object.keys(selector), o.metadata.name).not.toContain("cdk8s.io/metadata.addr");
      expect(selector["app.kubernetes.io/instance"], o.metadata.name).toBe("deepqueue");
    }
  });

  it("Knative's effective target is targetConcurrency (utilization 100 %, not the default 70 %)", () => {
    const ksvc = find(
      manifests({ functions: { ingest: { targetConcurrency: 40 } } }),
      "Service",
      "deepqueue-ingest",
    );
    expect(ksvc.spec.template.metadata.annotations).toMatchObject({
      "autoscaling.knative.dev/target": "40",
      "autoscaling.knative.dev/target-utilization-percentage": "100",
    });
  });

  it("puts the platform's knobs on every object and pod", () => {
    const objects = manifests({
      labels: { team: "ml" },
      annotations: { owner: "ml-platform" },
      pods: { imagePullSecrets: ["regcred"], priorityClassName: "inference" },
      functions: {
        batcher: { nodeSelector: { pool: "cpu" }, tolerations: [{ key: "dedicated", effect: "NoSchedule" }] },
      },
    });
    for (const o of objects) {
      expect(o.metadata.labels?.team, `${o.kind}/${o.metadata.name}`).toBe("ml");
      expect(o.metadata.annotations?.owner, `${o.kind}/${o.metadata.name}`).toBe("ml-platform");
    }
    for (const o of objects.filter((o) => ["Deployment", "Job", "CronJob"].includes(o.kind))) {
      const spec = podSpec(o);
      expect(spec.imagePullSecrets, o.metadata.name).toEqual([{ name: "regcred" }]);
      expect(spec.priorityClassName, o.metadata.name).toBe("inference");
    }
    const ksvc = find(objects, "Service", "deepqueue-ingest");
    expect(ksvc.spec.template.spec.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(ksvc.spec.template.spec.priorityClassName).toBeUndefined();
    const batcher = podSpec(find(objects, "Deployment", "deepqueue-batcher"));
    expect(batcher.tolerations).toEqual([{ key: "dedicated", operator: "Exists", effect: "NoSchedule" }]);
    expect(JSON.stringify(batcher.affinity)).toContain('"pool"');
    // Our labels win: selectors and NetworkPolicies rely on them.
    const overridden = manifests({ labels: { "app.kubernetes.io/instance": "other" } });
    expect(
      find(overridden, "Deployment", "deepqueue-cache").metadata.labels["app.kubernetes.io/instance"],
    ).toBe("deepqueue");
  });
});

describe("operations", () => {
  it("alerts with runbooks: DLQ, callbacks, reconciler, TTFT, oldest message, model server down", () => {
    const objects = manifests({
      monitoring: {
        prometheusRules: true,
        alerts: { oldestMessageMinutes: 7, runbookUrl: "https://runbooks.example.com/deepqueue" },
      },
      modelServer: { scaling: { ttftP95Seconds: 0.8 } },
    });
    const rule = find(objects, "PrometheusRule", "deepqueue-alerts");
    expect(rule.metadata.labels.release).toBe("kube-prometheus-stack");
    const rules = rule.spec.groups[0].rules;
    expect(rules.map((r: Manifest) => r.alert)).toEqual([
      "DeepqueueDeadLetterQueueNotEmpty",
      "DeepqueueCallbackFailures",
      "DeepqueueReconcilerFailedRequests",
      "DeepqueueTimeToFirstTokenOverTarget",
      "DeepqueueQueueOldestMessage",
      "DeepqueueModelServerDown",
    ]);
    for (const r of rules) {
      expect(r.annotations.runbook.length, r.alert).toBeGreaterThan(80);
      expect(r.annotations.runbook_url).toBe(`https://runbooks.example.com/deepqueue#${r.alert}`);
      expect(r.expr).toContain('namespace="deepqueue"');
    }
    const byName = Object.fromEntries(rules.map((r: Manifest) => [r.alert, r.expr]));
    expect(byName.DeepqueueQueueOldestMessage).toContain("> 420");
    expect(byName.DeepqueueTimeToFirstTokenOverTarget).toContain("> 0.8");
    expect(manifests().some((o) => o.kind === "PrometheusRule")).toBe(false);
  });

  it("ships a Grafana dashboard ConfigMap for the sidecar: stages, queue depths, model latency, degradations", () => {
    const cm = find(manifests(), "ConfigMap", "deepqueue-grafana-dashboard");
    expect(cm.metadata.labels.grafana_dashboard).toBe("1");
    const board = JSON.parse(cm.data["deepqueue-deepqueue.json"]);
    const titles = board.panels.map((p: Manifest) => p.title).join(" | ");
    for (const t of [
      "Ingest",
      "Workers",
      "Queue depth",
      "Oldest message age",
      "time to first token",
      "Degradations",
    ]) {
      expect(titles).toContain(t);
    }
    expect(
      manifests({ monitoring: { grafanaDashboard: false } }).some(
        (o) => o.metadata.name === "deepqueue-grafana-dashboard",
      ),
    ).toBe(false);
  });
});

describe("manifests", () => {
  it.each(PROFILES)("%s: every object matches its kind's schema", (profile) => {
    const objects = manifests(loadValuesFile(profilePath(profile)));
    expect(() => validateManifests(objects)).not.toThrow();
  });

  it("schema checks catch a broken object", () => {
    const objects = manifests();
    const so = find(objects, "ScaledObject", "deepqueue-model");
    so.spec.triggers[0].metadata.queueLength = 32;
    expect(() => validateManifests(objects)).toThrow(
      "ScaledObject deepqueue-model does not match the keda.sh/v1alpha1/ScaledObject schema",
    );
    const deployment = find(manifests(), "Deployment", "deepqueue-cache");
    deployment.spec.template.spec.containers[0].ports[0].containerPort = "9090";
    expect(() => validateManifests([deployment])).toThrow("Deployment deepqueue-cache does not match");
    expect(() => validateManifests([{ apiVersion: "example.com/v1", kind: "Widget" }])).toThrow(
      "no schema known",
    );
  });

  it.each(PROFILES)("%s: snapshot", (profile) => {
    expect(manifests(loadValuesFile(profilePath(profile)))).toMatchSnapshot();
  });

  it.each(PROFILES)("%s: synthesizes to a directory of YAML, offline", (profile) => {
    const out = mkdtempSync(join(tmpdir(), `dq-synth-${profile}-`));
    const files = synth(loadValuesFile(profilePath(profile)), out);
    expect(files).toEqual([join(out, "deepqueue.k8s.yaml")]);
    expect(existsSync(files[0] ?? "")).toBe(true);
    const docs = parseAllDocuments(readFileSync(files[0] ?? "", "utf8")).map((d) => d.toJS());
    expect(docs[0]).toMatchObject({
      kind: "Namespace",
      metadata: { labels: { "pod-security.kubernetes.io/warn": "restricted" } },
    });
    expect(docs[0].metadata.namespace).toBeUndefined();
    expect(docs.find((d) => d.kind === "ScaledObject")).toBeDefined();
  });
});
