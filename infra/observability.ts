import { ApiObject } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { VLLM_METRICS, VLLM_MODEL_LABEL } from "../functions/shared/vllm-metrics.ts";

export interface ObservabilityProps {
  readonly prefix: string;
  /** Namespace the pipeline runs in: every query is scoped to it (PodMonitor scrapes carry it). */
  readonly namespace: string;
  /** The model servers: Deployment name and served model name. */
  readonly modelServers: readonly { readonly deployment: string; readonly model: string }[];
  /** p95 time to first token above which the TTFT alert fires (the scaling target). */
  readonly ttftP95Seconds: number;
  readonly oldestMessageMinutes: number;
  readonly callbackFailuresPerMinute: number;
  /** Each alert's runbook_url is this + `#<alert>`. @default - no runbook_url, the runbook text only */
  readonly runbookUrl?: string;
  /** Emit the PrometheusRule. */
  readonly rules: boolean;
  /** Labels the Prometheus selects rules by. */
  readonly ruleLabels: Readonly<Record<string, string>>;
  /** Emit the dashboard ConfigMap. */
  readonly dashboard: boolean;
  /** Labels Grafana's sidecar finds dashboards by. */
  readonly dashboardLabels: Readonly<Record<string, string>>;
}

interface Alert {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly severity: "critical" | "warning";
  readonly summary: string;
  readonly runbook: string;
}

/**
 * The alerts, as data: each with the PromQL that fires it, how long it must
 * hold, and the runbook text an on-call engineer reads first.
 */
export function alerts(p: ObservabilityProps): Alert[] {
  const ns = `namespace="${p.namespace}"`;
  const models = p.modelServers.map((s) => s.model).join("|");
  return [
    {
      alert: "DeepqueueDeadLetterQueueNotEmpty",
      expr: `max by (queue) (deepqueue_queue_messages{${ns},queue=~"${p.prefix}-.+-dlq",state="visible"}) > 0`,
      for: "5m",
      severity: "warning",
      summary: "{{ $labels.queue }} holds {{ $value }} message(s) that failed maxReceiveCount times",
      runbook:
        "Messages reached the dead-letter queue after failing repeatedly. Read one (aws sqs receive-message --queue-url <dlq url> --visibility-timeout 0) and the worker's logs around its first receive; fix the cause, then redrive to the source queue (aws sqs start-message-move-task --source-arn <dlq arn>). The reconciler ends such requests failed past their deadline.",
    },
    {
      alert: "DeepqueueCallbackFailures",
      expr: `sum(rate(deepqueue_callback_failures_total{${ns}}[10m])) * 60 > ${p.callbackFailuresPerMinute}`,
      for: "10m",
      severity: "warning",
      summary: "Webhook deliveries are being given up ({{ $value }} per minute)",
      runbook:
        "deepqueue_callback_failures_total by reason: exhausted (the receiver kept failing), gone (410), refused (the address check), unsigned (the tenant has no secret). Results stay on the tenant's result queue; tell the tenant, or check the deliver worker's egress (NetworkPolicy deliver-webhooks).",
    },
    {
      alert: "DeepqueueReconcilerFailedRequests",
      expr: `sum(increase(deepqueue_reconciled_requests_total{${ns}}[30m])) > 0`,
      for: "0m",
      severity: "warning",
      summary: "The reconciler ended {{ $value }} request(s) failed: they were stuck past their deadline",
      runbook:
        "deepqueue_reconciled_requests_total by stuck_in tells at which step requests stopped. Look for a worker that is down or scaled to zero (kubectl get scaledobjects), a full queue (DeepqueueQueueOldestMessage), or model errors (DeepqueueModelServerDown). The reconciler runs as a CronJob: its counter is seen only when Prometheus scrapes a run (see docs/kubernetes.md).",
    },
    {
      alert: "DeepqueueTimeToFirstTokenOverTarget",
      expr: `histogram_quantile(0.95, sum by (le, ${VLLM_MODEL_LABEL}) (rate(${VLLM_METRICS.timeToFirstTokenSeconds}_bucket{${ns},${VLLM_MODEL_LABEL}=~"${models}"}[5m]))) > ${p.ttftP95Seconds}`,
      for: "15m",
      severity: "warning",
      summary: "p95 time to first token of {{ $labels.model_name }} is {{ $value }}s, over the target",
      runbook:
        "KEDA should be adding replicas: kubectl describe scaledobject for the model server. At maxReplicas, raise it or the GPUs; if replicas are Pending, no node has the GPUs (kubectl describe pod). A long queue inside vLLM (vllm:num_requests_waiting) with free replicas points at KV cache pressure: lower maxModelLen or raise gpuMemoryUtilization.",
    },
    {
      alert: "DeepqueueQueueOldestMessage",
      expr: `max by (queue) (deepqueue_queue_oldest_message_age_seconds{${ns}}) > ${p.oldestMessageMinutes * 60}`,
      for: "5m",
      severity: "critical",
      summary: "The oldest message on {{ $labels.queue }} is {{ $value }}s old",
      runbook:
        "Requests wait too long. Check the queue's worker: replicas (kubectl get deploy,scaledobject), readiness (/healthz reads DynamoDB), logs. On <prefix>-inference the model server is the usual bottleneck: see DeepqueueTimeToFirstTokenOverTarget. The age is what the workers observe (docs/kubernetes.md, Operations).",
    },
    ...p.modelServers.map((s) => modelServerDownAlert(p, s)),
  ];
}

/** One per model server: no replica available, or vLLM's metrics gone. */
function modelServerDownAlert(p: ObservabilityProps, s: ObservabilityProps["modelServers"][number]): Alert {
  const ns = `namespace="${p.namespace}"`;
  return {
    alert: "DeepqueueModelServerDown",
    expr: `(kube_deployment_status_replicas_available{${ns},deployment="${s.deployment}"} == 0) or absent(${VLLM_METRICS.numRequestsRunning}{${ns},${VLLM_MODEL_LABEL}="${s.model}"})`,
    for: "5m",
    severity: "critical",
    summary: `No replica of ${s.deployment} (${s.model}) is serving`,
    runbook: `kubectl -n ${p.namespace} get pods -l app.kubernetes.io/name=${s.deployment}; describe the pods: Pending (no GPU node), Init (weights not staged: the download Job), CrashLoopBackOff (vLLM logs). Requests degrade meanwhile (fallback model, cache, static answers). If the pods run, Prometheus may not scrape them (monitoring.podMonitors, podMonitorLabels).`,
  };
}

/** One dashboard panel: a time series of PromQL queries. */
function panel(id: number, title: string, queries: readonly [string, string][], unit = "short") {
  return {
    id,
    title,
    type: "timeseries",
    // A Grafana template variable (the dashboard's datasource picker), not a JavaScript template.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's syntax, meant literally.
    datasource: { type: "prometheus", uid: "${datasource}" },
    gridPos: { h: 8, w: 12, x: ((id - 1) % 2) * 12, y: Math.floor((id - 1) / 2) * 8 },
    fieldConfig: { defaults: { unit }, overrides: [] },
    targets: queries.map(([expr, legendFormat], i) => ({
      refId: String.fromCharCode(65 + i),
      expr,
      legendFormat,
    })),
  };
}

/** Panels 1-6: ingest, the workers and their queues. */
function pipelinePanels(ns: string) {
  return [
    panel(
      1,
      "Ingest: submissions by outcome",
      [[`sum by (outcome) (rate(deepqueue_ingest_requests_total{${ns}}[5m]))`, "{{outcome}}"]],
      "reqps",
    ),
    panel(
      2,
      "Workers: messages by outcome",
      [
        [
          `sum by (function, outcome) (rate(deepqueue_worker_messages_total{${ns}}[5m]))`,
          "{{function}} {{outcome}}",
        ],
      ],
      "reqps",
    ),
    panel(3, "Queue depth", [
      [`max by (queue, state) (deepqueue_queue_messages{${ns}})`, "{{queue}} {{state}}"],
    ]),
    panel(
      4,
      "Oldest message age",
      [[`max by (queue) (deepqueue_queue_oldest_message_age_seconds{${ns}})`, "{{queue}}"]],
      "s",
    ),
    panel(
      5,
      "Queue wait p95 (send to first receive)",
      [
        [
          `histogram_quantile(0.95, sum by (le, function) (rate(deepqueue_queue_wait_seconds_bucket{${ns}}[5m])))`,
          "{{function}}",
        ],
      ],
      "s",
    ),
    panel(
      6,
      "Handler time p95 per batch",
      [
        [
          `histogram_quantile(0.95, sum by (le, function) (rate(deepqueue_worker_handler_seconds_bucket{${ns}}[5m])))`,
          "{{function}}",
        ],
      ],
      "s",
    ),
  ];
}

/** Panels 7-12: the model servers, degradations and delivery. */
function modelPanels(p: ObservabilityProps, ns: string) {
  const models = p.modelServers.map((s) => s.model).join("|");
  const vllm = `{${ns},${VLLM_MODEL_LABEL}=~"${models}"}`;
  return [
    panel(
      7,
      "Model: p95 time to first token",
      [
        [
          `histogram_quantile(0.95, sum by (le, ${VLLM_MODEL_LABEL}) (rate(${VLLM_METRICS.timeToFirstTokenSeconds}_bucket${vllm}[5m])))`,
          "{{model_name}}",
        ],
        [`${p.ttftP95Seconds}`, "target"],
      ],
      "s",
    ),
    panel(8, "Model: requests running and waiting in vLLM", [
      [`sum by (${VLLM_MODEL_LABEL}) (${VLLM_METRICS.numRequestsRunning}${vllm})`, "{{model_name}} running"],
      [`sum by (${VLLM_MODEL_LABEL}) (${VLLM_METRICS.numRequestsWaiting}${vllm})`, "{{model_name}} waiting"],
    ]),
    panel(
      9,
      "Model calls p95 (batcher)",
      [
        [
          `histogram_quantile(0.95, sum by (le, model) (rate(deepqueue_model_latency_seconds_bucket{${ns}}[5m])))`,
          "{{model}}",
        ],
      ],
      "s",
    ),
    panel(
      10,
      "Model: KV cache usage",
      [[`max by (${VLLM_MODEL_LABEL}) (${VLLM_METRICS.kvCacheUsagePerc}${vllm})`, "{{model_name}}"]],
      "percentunit",
    ),
    panel(
      11,
      "Degradations by level",
      [[`sum by (level) (rate(deepqueue_degradations_total{${ns}}[5m]))`, "{{level}}"]],
      "reqps",
    ),
    panel(
      12,
      "Delivery: results and callbacks",
      [
        [`sum (rate(deepqueue_results_published_total{${ns}}[5m]))`, "results published"],
        [`sum by (outcome) (rate(deepqueue_callback_attempts_total{${ns}}[5m]))`, "callback {{outcome}}"],
        [`sum by (reason) (rate(deepqueue_callback_failures_total{${ns}}[5m]))`, "given up: {{reason}}"],
      ],
      "reqps",
    ),
  ];
}

/** The dashboard: the pipeline's stages, queue depths, model latency and degradations. */
export function dashboard(p: ObservabilityProps): object {
  const ns = `namespace="${p.namespace}"`;
  const panels = [...pipelinePanels(ns), ...modelPanels(p, ns)];
  return {
    uid: `deepqueue-${p.namespace}-${p.prefix}`.slice(0, 40),
    title: `deepqueue (${p.namespace}/${p.prefix})`,
    tags: ["deepqueue"],
    timezone: "browser",
    schemaVersion: 39,
    refresh: "30s",
    time: { from: "now-3h", to: "now" },
    templating: {
      list: [{ name: "datasource", type: "datasource", query: "prometheus", label: "Prometheus" }],
    },
    panels,
  };
}

/**
 * Operations in the box: a PrometheusRule (monitoring.coreos.com/v1) with
 * deepqueue's alerts and their runbooks, and a Grafana dashboard as a
 * ConfigMap that Grafana's dashboard sidecar loads (label `grafana_dashboard: "1"`
 * in kube-prometheus-stack). Both are driven by the values file.
 * https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.PrometheusRule
 *
 * @example
 * new Observability(chart, "observability", { prefix: "deepqueue", namespace: "deepqueue", ... });
 */
export class Observability extends Construct {
  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const labels = { "app.kubernetes.io/part-of": "deepqueue", "app.kubernetes.io/instance": props.prefix };
    if (props.rules) {
      new ApiObject(this, "rules", {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: { name: `${props.prefix}-alerts`, labels: { ...labels, ...props.ruleLabels } },
        spec: {
          groups: [
            {
              name: `deepqueue.${props.prefix}`,
              rules: alerts(props).map((a) => ({
                alert: a.alert,
                expr: a.expr,
                for: a.for,
                labels: { severity: a.severity },
                annotations: {
                  summary: a.summary,
                  runbook: a.runbook,
                  ...(props.runbookUrl ? { runbook_url: `${props.runbookUrl}#${a.alert}` } : {}),
                },
              })),
            },
          ],
        },
      });
    }
    if (props.dashboard) {
      new kplus.ConfigMap(this, "dashboard", {
        metadata: {
          name: `${props.prefix}-grafana-dashboard`,
          labels: { ...labels, ...props.dashboardLabels },
        },
        data: { [`deepqueue-${props.prefix}.json`]: JSON.stringify(dashboard(props), null, 1) },
      });
    }
  }
}
