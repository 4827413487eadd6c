import { ApiObject, Chart, type ChartProps, JsonPatch } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import type { Construct } from "constructs";
import { queueName } from "../functions/shared/names.ts";
import { AwsTriggerAuthentication } from "./aws-trigger-authentication.ts";
import { otelEnv, type Values } from "./config.ts";
import { DashboardDeployment } from "./dashboard.ts";
import { FunctionWorker, WORKER_METRICS_PORT, WORKER_QUEUES, type WorkerName } from "./function-worker.ts";
import { IngestService } from "./ingest-service.ts";
import { MODEL_SERVER_PORT, ModelServer } from "./model-server.ts";
import { ModelServerScaler } from "./model-server-scaler.ts";
import { MODEL_CLIENTS, PipelineNetworkPolicies } from "./network-policies.ts";
import { Observability } from "./observability.ts";
import { PodMonitors } from "./pod-monitors.ts";
import { ScheduledCommand } from "./scheduled-command.ts";
import { applyPlatformOptions, componentLabels, imageReference } from "./workload-defaults.ts";

export interface DeepqueueChartProps extends Omit<ChartProps, "namespace"> {
  /** The validated values (config.ts `parseValues`). */
  readonly values: Values;
}

/** SQS queue URL when the account is known, else the bare name (KEDA accepts it when unambiguous). */
function queueUrl(values: Values, queue: string): string {
  return values.aws.accountId
    ? `https://sqs.${values.aws.region}.amazonaws.com/${values.aws.accountId}/${queue}`
    : queue;
}

const PULL_POLICIES = {
  IfNotPresent: kplus.ImagePullPolicy.IF_NOT_PRESENT,
  Always: kplus.ImagePullPolicy.ALWAYS,
  Never: kplus.ImagePullPolicy.NEVER,
} as const;

/**
 * Everything docs/kubernetes.md lists, from one validated configuration: the GPU model
 * server(s), ingest on Knative, the four SQS workers, KEDA scalers, the
 * reconciler, and the wiring (ConfigMap, ServiceAccounts, NetworkPolicies).
 * Construct ids are hashed into generated names: keep them stable.
 *
 * @example
 * const app = new App({ outdir: "dist" });
 * new DeepqueueChart(app, "deepqueue", { values: parseValues({}) });
 * app.synth();
 */
export class DeepqueueChart extends Chart {
  readonly modelServer: ModelServer;
  readonly fallbackModelServer?: ModelServer;
  readonly configMap: kplus.ConfigMap;
  readonly workers: Readonly<Record<WorkerName, FunctionWorker>>;
  readonly ingest: IngestService;
  private readonly values: Values;
  private readonly prefix: string;
  private readonly image: string;
  private readonly pullPolicy: kplus.ImagePullPolicy;
  private readonly apiKey: { readonly name: string; readonly key: string } | undefined;

  constructor(scope: Construct, id: string, props: DeepqueueChartProps) {
    const v = props.values;
    super(scope, id, { ...props, namespace: v.namespace });
    this.values = v;
    this.prefix = v.prefix;
    this.image = imageReference(`${v.image.repository}:${v.image.tag}`, v.image.digest);
    this.pullPolicy = PULL_POLICIES[v.image.pullPolicy];
    this.apiKey = v.inferenceApiKey.enabled
      ? { name: v.inferenceApiKey.secretName, key: v.inferenceApiKey.key }
      : undefined;

    if (v.createNamespace) this.addNamespace();
    this.modelServer = this.addModelServer();
    if (v.fallbackModelServer.enabled) this.fallbackModelServer = this.addFallbackModelServer();
    this.configMap = this.addConfigMap();
    const auth = new AwsTriggerAuthentication(this, "keda-aws", {
      name: `${this.prefix}-aws`,
      ...(v.aws.kedaRoleArn ? { roleArn: v.aws.kedaRoleArn } : {}),
    });
    this.addModelServerScaler(auth.name);
    this.ingest = this.addIngest();
    this.workers = {
      cache: this.addWorker("cache", auth.name),
      batcher: this.addWorker("batcher", auth.name),
      deliver: this.addWorker("deliver", auth.name),
      batches: this.addWorker("batches", auth.name),
    };
    this.addScheduledCommands();
    if (v.dashboard.enabled) this.addDashboard();
    if (v.networkPolicies.enabled) this.addNetworkPolicies();
    if (v.monitoring.podMonitors)
      new PodMonitors(this, "pod-monitors", { prefix: this.prefix, labels: v.monitoring.podMonitorLabels });
    this.addObservability();
  }

  private addNamespace(): void {
    const namespace = new kplus.Namespace(this, "namespace", {
      metadata: {
        name: this.values.namespace,
        // Every deepqueue pod meets the "restricted" Pod Security Standard; warn and audit on
        // anything that does not (enforcing is left to the platform team: Knative's sidecar is theirs).
        labels: {
          "pod-security.kubernetes.io/warn": "restricted",
          "pod-security.kubernetes.io/audit": "restricted",
        },
      },
    });
    // The chart stamps its namespace on every object; a Namespace is cluster-scoped.
    ApiObject.of(namespace).addJsonPatch(JsonPatch.remove("/metadata/namespace"));
  }

  private addModelServer(): ModelServer {
    const { scaling: _scaling, minReplicas, maxReplicas, ...serverValues } = this.values.modelServer;
    return new ModelServer(this, "model-server", {
      ...serverValues,
      name: `${this.prefix}-model`,
      prefix: this.prefix,
      replicas: Math.max(minReplicas, 1),
      maxReplicas,
      ...(this.apiKey ? { apiKeySecret: this.apiKey } : {}),
    });
  }

  private addFallbackModelServer(): ModelServer {
    const { enabled: _enabled, replicas, ...fallbackValues } = this.values.fallbackModelServer;
    return new ModelServer(this, "fallback-model-server", {
      ...fallbackValues,
      name: `${this.prefix}-fallback-model`,
      prefix: this.prefix,
      component: "fallback-model-server",
      replicas,
      maxReplicas: replicas,
      ...(this.apiKey ? { apiKeySecret: this.apiKey } : {}),
    });
  }

  /** The functions' environment (docs/api.md#configuration). */
  private addConfigMap(): kplus.ConfigMap {
    const v = this.values;
    return new kplus.ConfigMap(this, "config", {
      metadata: {
        name: `${this.prefix}-config`,
        labels: { "app.kubernetes.io/part-of": "deepqueue", "app.kubernetes.io/instance": this.prefix },
      },
      data: {
        AWS_REGION: v.aws.region,
        DEEPQUEUE_PREFIX: this.prefix,
        INFERENCE_URL: this.modelServer.url,
        DEEPQUEUE_MODEL: this.modelServer.servedModelName,
        DEEPQUEUE_MAX_MODEL_LEN: String(v.modelServer.maxModelLen),
        DEEPQUEUE_WORKER_METRICS_PORT: String(WORKER_METRICS_PORT),
        LOG_LEVEL: v.logLevel,
        ...(this.fallbackModelServer
          ? {
              DEEPQUEUE_FALLBACK_MODEL: this.fallbackModelServer.servedModelName,
              DEEPQUEUE_FALLBACK_INFERENCE_URL: this.fallbackModelServer.url,
            }
          : {}),
        ...otelEnv(v.tracing),
      },
    });
  }

  /** The GPUs scale on both inference lanes, p95 time to first token and requests waiting in vLLM. */
  private addModelServerScaler(triggerAuthName: string): void {
    const v = this.values;
    new ModelServerScaler(this, "model-server-scaler", {
      server: this.modelServer,
      namespace: v.namespace,
      inferenceQueueUrl: queueUrl(v, queueName(this.prefix, "inference")),
      batchQueueUrl: queueUrl(v, queueName(this.prefix, "inference-batch")),
      region: v.aws.region,
      triggerAuthName,
      prometheusUrl: v.monitoring.prometheusUrl,
      minReplicas: v.modelServer.minReplicas,
      maxReplicas: v.modelServer.maxReplicas,
      ...v.modelServer.scaling,
    });
  }

  private serviceAccount(
    component: "ingest" | WorkerName | "reconciler" | "bootstrap",
    roleArn?: string,
  ): kplus.ServiceAccount {
    return new kplus.ServiceAccount(this, `${component}-service-account`, {
      metadata: {
        name: `${this.prefix}-${component}`,
        labels: componentLabels(this.prefix, component),
        ...(roleArn ? { annotations: { "eks.amazonaws.com/role-arn": roleArn } } : {}),
      },
      automountToken: false,
    });
  }

  private addIngest(): IngestService {
    const { roleArn, ...ingestProps } = this.values.functions.ingest;
    const account = this.serviceAccount("ingest", roleArn ?? this.values.aws.roleArn);
    return new IngestService(this, "ingest", {
      ...ingestProps,
      prefix: this.prefix,
      image: this.image,
      imagePullPolicy: this.values.image.pullPolicy,
      configMapName: this.configMap.name,
      serviceAccountName: account.name,
    });
  }

  /** One SQS worker, scaled on each queue it consumes. */
  private addWorker(name: WorkerName, triggerAuthName: string): FunctionWorker {
    const v = this.values;
    const { roleArn, ...workerValues } = v.functions[name];
    const [queue, ...moreQueues] = WORKER_QUEUES[name];
    return new FunctionWorker(this, name, {
      ...workerValues,
      worker: name,
      prefix: this.prefix,
      image: this.image,
      imagePullPolicy: this.pullPolicy,
      config: this.configMap,
      serviceAccount: this.serviceAccount(name, roleArn ?? v.aws.roleArn),
      queueUrl: queueUrl(v, queueName(this.prefix, queue)),
      moreQueueUrls: Object.fromEntries(moreQueues.map((q) => [q, queueUrl(v, queueName(this.prefix, q))])),
      region: v.aws.region,
      triggerAuthName,
      // The model's clients: completions (batcher) and conversation summaries (cache).
      ...(this.apiKey && (MODEL_CLIENTS as readonly string[]).includes(name)
        ? { inferenceApiKey: { secretName: this.apiKey.name, key: this.apiKey.key } }
        : {}),
    });
  }

  /** The reconciler's CronJob and the one-off bootstrap Job, when enabled. */
  private addScheduledCommands(): void {
    const v = this.values;
    const common = {
      prefix: this.prefix,
      image: this.image,
      imagePullPolicy: this.pullPolicy,
      config: this.configMap,
    };
    if (v.reconciler.enabled) {
      new ScheduledCommand(this, "reconciler", {
        ...common,
        component: "reconciler",
        name: `${this.prefix}-reconciler`,
        // One run per Job; without --once the command loops forever and the Job never ends.
        args: ["reconcile", "--once", "--json"],
        schedule: v.reconciler.schedule,
        serviceAccount: this.serviceAccount("reconciler", v.aws.roleArn),
      });
    }
    if (v.bootstrap.enabled) {
      new ScheduledCommand(this, "bootstrap", {
        ...common,
        component: "bootstrap",
        name: `${this.prefix}-bootstrap`,
        args: ["bootstrap"],
        serviceAccount: this.serviceAccount("bootstrap", v.aws.roleArn),
      });
    }
  }

  private addDashboard(): void {
    const v = this.values;
    const roleArn = v.dashboard.roleArn ?? v.aws.roleArn;
    new DashboardDeployment(this, "dashboard", {
      prefix: this.prefix,
      image: this.image,
      imagePullPolicy: this.pullPolicy,
      config: this.configMap,
      adminTokenSecret: v.dashboard.adminTokenSecret,
      cpuMillis: v.dashboard.cpuMillis,
      memoryMi: v.dashboard.memoryMi,
      ...(roleArn ? { roleArn } : {}),
      ...(v.networkPolicies.enabled ? { modelServerPort: MODEL_SERVER_PORT } : {}),
    });
  }

  private addNetworkPolicies(): void {
    const v = this.values;
    new PipelineNetworkPolicies(this, "network-policies", {
      prefix: this.prefix,
      modelServerPort: MODEL_SERVER_PORT,
      workerMetricsPort: WORKER_METRICS_PORT,
      ingressNamespaces: v.networkPolicies.ingressNamespaces,
      monitoringNamespace: v.monitoring.namespace,
      egress: v.networkPolicies.egress,
      webhookCidrs: v.networkPolicies.webhookCidrs,
    });
  }

  /** Alerts and the Grafana dashboard. */
  private addObservability(): void {
    const v = this.values;
    new Observability(this, "observability", {
      prefix: this.prefix,
      namespace: v.namespace,
      modelServers: [this.modelServer, ...(this.fallbackModelServer ? [this.fallbackModelServer] : [])].map(
        (s) => ({ deployment: s.deployment.name, model: s.servedModelName }),
      ),
      ttftP95Seconds: v.modelServer.scaling.ttftP95Seconds,
      oldestMessageMinutes: v.monitoring.alerts.oldestMessageMinutes,
      callbackFailuresPerMinute: v.monitoring.alerts.callbackFailuresPerMinute,
      ...(v.monitoring.alerts.runbookUrl ? { runbookUrl: v.monitoring.alerts.runbookUrl } : {}),
      rules: v.monitoring.prometheusRules,
      ruleLabels: v.monitoring.podMonitorLabels,
      dashboard: v.monitoring.grafanaDashboard,
      dashboardLabels: v.monitoring.dashboardLabels,
    });
  }

  /** Every object, with the platform's labels, annotations, imagePullSecrets and priorityClassName. */
  override toJson(): unknown[] {
    const { labels, annotations, pods } = this.values;
    return super.toJson().map((o) =>
      applyPlatformOptions(o, {
        labels,
        annotations,
        imagePullSecrets: pods.imagePullSecrets,
        ...(pods.priorityClassName ? { priorityClassName: pods.priorityClassName } : {}),
      }),
    );
  }
}
