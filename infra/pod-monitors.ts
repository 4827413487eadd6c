import { ApiObject } from "cdk8s";
import { Construct } from "constructs";
import { COMPONENT_LABEL, INSTANCE_LABEL } from "./workload-defaults.ts";

export interface PodMonitorsProps {
  readonly prefix: string;
  /** @default "30s" */
  readonly interval?: string;
  /** Labels the Prometheus selects PodMonitors by. @default {} */
  readonly labels?: Readonly<Record<string, string>>;
}

/**
 * Prometheus Operator PodMonitors (monitoring.coreos.com/v1) for the vLLM
 * servers (port `http`, /metrics: the series KEDA's latency triggers query)
 * and the workers (port `metrics`). Needs the Prometheus Operator's CRDs.
 * https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.PodMonitor
 *
 * @example
 * new PodMonitors(chart, "pod-monitors", { prefix: "deepqueue" });
 */
export class PodMonitors extends Construct {
  constructor(scope: Construct, id: string, props: PodMonitorsProps) {
    super(scope, id);
    const interval = props.interval ?? "30s";
    const monitor = (id: string, components: string[], port: string) =>
      new ApiObject(this, id, {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PodMonitor",
        metadata: { name: `${props.prefix}-${id}`, labels: { ...props.labels } },
        spec: {
          selector: {
            matchLabels: { [INSTANCE_LABEL]: props.prefix },
            matchExpressions: [{ key: COMPONENT_LABEL, operator: "In", values: components }],
          },
          podMetricsEndpoints: [{ port, path: "/metrics", interval }],
        },
      });
    monitor("model-servers", ["model-server", "fallback-model-server"], "http");
    monitor("workers", ["cache", "batcher", "deliver", "batches"], "metrics");
  }
}
