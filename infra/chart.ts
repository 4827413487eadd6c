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

/**
 * Everything docs/kubernetes.md lists, from one validated configuration: the GPU model
 * server(s), ingest on Knative, the three SQS workers, KEDA scalers, the
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

  constructor(scope: Construct, id: string, props: DeepqueueChartProps) {
    const v = props.values;
    super(scope, id, { ...props, namespace: v.namespace });
    const { prefix } = v;
    this.values = v;
    const image = imageReference(`${v.image.repository}:${v.image.tag}`, v.image.digest);
    const apiKey = v.inferenceApiKey.enabled
      ? { name: v.inferenceApiKey.secretName, key: v.inferenceApiKey.key }
      : undefined;

    if (v.createNamespace) {
      const namespace = new kplus.Namespace(this, "namespace", {
        metadata: {
          name: v.namespace,
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

    const { scaling, minReplicas, maxReplicas, ...serverValues } = v.modelServer;
    this.modelServer = new ModelServer(this, "model-server", {
      ...serverValues,
      name: `${prefix}-model`,
      prefix,
      replicas: Math.max(minReplicas, 1),
      maxReplicas,
      ...(apiKey ? { apiKeySecret: apiKey } : {}),
    });

    if (v.fallbackModelServer.enabled) {
      const { enabled: _enabled, replicas, ...fallbackValues } = v.fallbackModelServer;
      this.fallbackModelServer = new ModelServer(this, "fallback-model-server", {
        ...fallbackValues,
        name: `${prefix}-fallback-model`,
        prefix,
        component: "fallback-model-server",
        replicas,
        maxReplicas: replicas,
        ...(apiKey ? { apiKeySecret: apiKey } : {}),
      });
    }

    this.configMap = new kplus.ConfigMap(this, "config", {
      metadata: {
        name: `${prefix}-config`,
        labels: { "app.kubernetes.io/part-of": "deepqueue", "app.kubernetes.io/instance": prefix },
      },
      data: {
        AWS_REGION: v.aws.region,
        DEEPQUEUE_PREFIX: prefix,
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

    const auth = new AwsTriggerAuthentication(this, "keda-aws", {
      name: `${prefix}-aws`,
      ...(v.aws.kedaRoleArn ? { roleArn: v.aws.kedaRoleArn } : {}),
    });

    new ModelServerScaler(this, "model-server-scaler", {
      server: this.modelServer,
      namespace: v.namespace,
      inferenceQueueUrl: queueUrl(v, queueName(prefix, "inference")),
      batchQueueUrl: queueUrl(v, queueName(prefix, "inference-batch")),
      region: v.aws.region,
      triggerAuthName: auth.name,
      prometheusUrl: v.monitoring.prometheusUrl,
      minReplicas,
      maxReplicas,
      ...scaling,
    });

    const serviceAccount = (
      component: "ingest" | WorkerName | "reconciler" | "bootstrap",
      roleArn?: string,
    ) =>
      new kplus.ServiceAccount(this, `${component}-service-account`, {
        metadata: {
          name: `${prefix}-${component}`,
          labels: componentLabels(prefix, component),
          ...(roleArn ? { annotations: { "eks.amazonaws.com/role-arn": roleArn } } : {}),
        },
        automountToken: false,
      });

    const ingestValues = v.functions.ingest;
    const ingestAccount = serviceAccount("ingest", ingestValues.roleArn ?? v.aws.roleArn);
    const { roleArn: _ingestRole, ...ingestProps } = ingestValues;
    this.ingest = new IngestService(this, "ingest", {
      ...ingestProps,
      prefix,
      image,
      imagePullPolicy: v.image.pullPolicy,
      configMapName: this.configMap.name,
      serviceAccountName: ingestAccount.name,
    });

    const pullPolicy = {
      IfNotPresent: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      Always: kplus.ImagePullPolicy.ALWAYS,
      Never: kplus.ImagePullPolicy.NEVER,
    }[v.image.pullPolicy];
    const worker = (name: WorkerName) => {
      const { roleArn, ...workerValues } = v.functions[name];
      const [queue, ...moreQueues] = WORKER_QUEUES[name];
      return new FunctionWorker(this, name, {
        ...workerValues,
        worker: name,
        prefix,
        image,
        imagePullPolicy: pullPolicy,
        config: this.configMap,
        serviceAccount: serviceAccount(name, roleArn ?? v.aws.roleArn),
        queueUrl: queueUrl(v, queueName(prefix, queue)),
        moreQueueUrls: Object.fromEntries(moreQueues.map((q) => [q, queueUrl(v, queueName(prefix, q))])),
        region: v.aws.region,
        triggerAuthName: auth.name,
        // The model's clients: completions (batcher) and conversation summaries (cache).
        ...(apiKey && (MODEL_CLIENTS as readonly string[]).includes(name)
          ? { inferenceApiKey: { secretName: apiKey.name, key: apiKey.key } }
          : {}),
      });
    };
    this.workers = { cache: worker("cache"), batcher: worker("batcher"), deliver: worker("deliver") };

    if (v.reconciler.enabled) {
      new ScheduledCommand(this, "reconciler", {
        prefix,
        component: "reconciler",
        name: `${prefix}-reconciler`,
        // One run per Job; without --once the command loops forever and the Job never ends.
        args: ["reconcile", "--once", "--json"],
        schedule: v.reconciler.schedule,
        image,
        imagePullPolicy: pullPolicy,
        config: this.configMap,
        serviceAccount: serviceAccount("reconciler", v.aws.roleArn),
      });
    }
    if (v.bootstrap.enabled) {
      new ScheduledCommand(this, "bootstrap", {
        prefix,
        component: "bootstrap",
        name: `${prefix}-bootstrap`,
        args: ["bootstrap"],
        image,
        imagePullPolicy: pullPolicy,
        config: this.configMap,
        serviceAccount: serviceAccount("bootstrap", v.aws.roleArn),
      });
    }

    if (v.dashboard.enabled) {
      new DashboardDeployment(this, "dashboard", {
        prefix,
        image,
        imagePullPolicy: pullPolicy,
        config: this.configMap,
        adminTokenSecret: v.dashboard.adminTokenSecret,
        cpuMillis: v.dashboard.cpuMillis,
        memoryMi: v.dashboard.memoryMi,
        ...((v.dashboard.roleArn ?? v.aws.roleArn) ? { roleArn: v.dashboard.roleArn ?? v.aws.roleArn } : {}),
        ...(v.networkPolicies.enabled ? { modelServerPort: MODEL_SERVER_PORT } : {}),
      });
    }

    if (v.networkPolicies.enabled) {
      new PipelineNetworkPolicies(this, "network-policies", {
        prefix,
        modelServerPort: MODEL_SERVER_PORT,
        workerMetricsPort: WORKER_METRICS_PORT,
        ingressNamespaces: v.networkPolicies.ingressNamespaces,
        monitoringNamespace: v.monitoring.namespace,
        egress: v.networkPolicies.egress,
        webhookCidrs: v.networkPolicies.webhookCidrs,
      });
    }
    if (v.monitoring.podMonitors)
      new PodMonitors(this, "pod-monitors", { prefix, labels: v.monitoring.podMonitorLabels });
    new Observability(this, "observability", {
      prefix,
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
