import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { WORKER_QUEUES } from "./function-worker.ts";
import { COMPONENT_LABEL, componentLabels, INSTANCE_LABEL } from "./workload-defaults.ts";

const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/**
 * The functions that call the model servers: the batcher (completions, and
 * the fallback model) and the cache worker (conversation summaries, written
 * by the model itself; functions/cache/handler.ts).
 */
export const MODEL_CLIENTS = ["batcher", "cache"] as const;

export interface PipelineNetworkPoliciesProps {
  /** deepqueue prefix: policies select pods by component within this instance. */
  readonly prefix: string;
  /** Port of the model servers. */
  readonly modelServerPort: number;
  /** Port of the workers' /healthz + /metrics server. */
  readonly workerMetricsPort: number;
  /** Namespaces that may reach ingest (Knative's activator and the ingress gateway). */
  readonly ingressNamespaces: readonly string[];
  /** Namespace of Prometheus, allowed to scrape. */
  readonly monitoringNamespace: string;
  /** Emit egress rules too. @default true */
  readonly egress?: boolean;
  /** CIDRs the deliver worker may post webhooks to, on any port. @default ["0.0.0.0/0"] */
  readonly webhookCidrs?: readonly string[];
}

export const tcp = (port: number) => ({ protocol: "TCP", port: kplus.k8s.IntOrString.fromNumber(port) });

/** Prometheus, by its namespace. */
const scrapers = (namespace: string) => ({
  namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: namespace } },
});

/** The model servers' pods (main and fallback) of one instance. */
function modelServerPods(prefix: string) {
  return {
    matchLabels: { [INSTANCE_LABEL]: prefix },
    matchExpressions: [
      { key: COMPONENT_LABEL, operator: "In", values: ["model-server", "fallback-model-server"] },
    ],
  };
}

/** A NetworkPolicy on the model servers' pods that lets in what `rules` allow (policies add up). */
export function modelServersPolicy(
  scope: Construct,
  id: string,
  name: string,
  prefix: string,
  rules: kplus.k8s.NetworkPolicyIngressRule[],
): kplus.k8s.KubeNetworkPolicy {
  return new kplus.k8s.KubeNetworkPolicy(scope, id, {
    metadata: { name },
    spec: { podSelector: modelServerPods(prefix), policyTypes: ["Ingress"], ingress: rules },
  });
}

/** EKS Pod Identity's agent: pods get their AWS credentials from it, on port 80. */
const EKS_POD_IDENTITY_AGENT = "169.254.170.23/32";

/**
 * Who may talk to whom. Ingress: only the model's clients (the batcher, and the
 * cache worker for summaries) and Prometheus reach the model servers; only the ingress layer (and Prometheus) reaches ingest; the
 * workers accept nothing but scrapes. Egress: DNS, each other, HTTPS
 * anywhere (AWS APIs have no fixed addresses), the EKS Pod Identity agent,
 * and, for the deliver worker, webhooks. Pods are selected by the
 * `app.kubernetes.io/component` and `/instance` labels.
 * https://kubernetes.io/docs/concepts/services-networking/network-policies/
 *
 * @example
 * new PipelineNetworkPolicies(chart, "network-policies", { prefix: "deepqueue", modelServerPort: 8000,
 *   workerMetricsPort: 9090, ingressNamespaces: ["knative-serving", "kourier-system"], monitoringNamespace: "monitoring" });
 */
export class PipelineNetworkPolicies extends Construct {
  readonly modelServers: kplus.k8s.KubeNetworkPolicy;
  readonly ingest: kplus.k8s.KubeNetworkPolicy;
  readonly workers: kplus.k8s.KubeNetworkPolicy;
  readonly egress?: kplus.k8s.KubeNetworkPolicy;
  readonly webhooks?: kplus.k8s.KubeNetworkPolicy;

  constructor(scope: Construct, id: string, props: PipelineNetworkPoliciesProps) {
    super(scope, id);
    this.modelServers = this.modelServersPolicy(props);
    this.ingest = this.ingestPolicy(props);
    this.workers = this.workersPolicy(props);
    if (props.egress ?? true) {
      this.egress = this.egressPolicy(props.prefix);
      this.webhooks = this.webhooksPolicy(props);
    }
  }

  /** Only the model's clients and Prometheus reach the model servers. */
  private modelServersPolicy(props: PipelineNetworkPoliciesProps): kplus.k8s.KubeNetworkPolicy {
    const { prefix } = props;
    const instance = { [INSTANCE_LABEL]: prefix };
    const monitoring = scrapers(props.monitoringNamespace);
    return modelServersPolicy(this, "model-servers", `${prefix}-model-servers`, prefix, [
      {
        from: [
          {
            podSelector: {
              matchLabels: instance,
              matchExpressions: [{ key: COMPONENT_LABEL, operator: "In", values: [...MODEL_CLIENTS] }],
            },
          },
        ],
        ports: [tcp(props.modelServerPort)],
      },
      { from: [monitoring], ports: [tcp(props.modelServerPort)] },
    ]);
  }

  /** Only the ingress layer (and Prometheus) reaches ingest. */
  private ingestPolicy(props: PipelineNetworkPoliciesProps): kplus.k8s.KubeNetworkPolicy {
    const { prefix } = props;
    const monitoring = scrapers(props.monitoringNamespace);
    return new kplus.k8s.KubeNetworkPolicy(this, "ingest", {
      metadata: { name: `${prefix}-ingest` },
      spec: {
        podSelector: { matchLabels: componentLabels(prefix, "ingest") },
        policyTypes: ["Ingress"],
        ingress: [
          {
            // Knative's queue-proxy sidecar listens on several ports (8012, 8022, 9091); allow them all from the ingress layer.
            from: [
              {
                namespaceSelector: {
                  matchExpressions: [
                    { key: NAMESPACE_NAME_LABEL, operator: "In", values: [...props.ingressNamespaces] },
                  ],
                },
              },
            ],
          },
          { from: [monitoring] },
        ],
      },
    });
  }

  /** The workers and jobs accept nothing but scrapes. */
  private workersPolicy(props: PipelineNetworkPoliciesProps): kplus.k8s.KubeNetworkPolicy {
    const { prefix } = props;
    const instance = { [INSTANCE_LABEL]: prefix };
    const monitoring = scrapers(props.monitoringNamespace);
    return new kplus.k8s.KubeNetworkPolicy(this, "workers", {
      metadata: { name: `${prefix}-workers` },
      spec: {
        podSelector: {
          matchLabels: instance,
          matchExpressions: [
            {
              key: COMPONENT_LABEL,
              operator: "In",
              values: [...Object.keys(WORKER_QUEUES), "reconciler", "bootstrap"],
            },
          ],
        },
        policyTypes: ["Ingress"],
        ingress: [{ from: [monitoring], ports: [tcp(props.workerMetricsPort)] }],
      },
    });
  }

  /**
   * Every deepqueue pod: DNS, each other (the model servers), and HTTPS out (SQS, DynamoDB,
   * STS for IRSA, the Hugging Face Hub for the weights), plus the EKS Pod Identity agent.
   */
  private egressPolicy(prefix: string): kplus.k8s.KubeNetworkPolicy {
    const instance = { [INSTANCE_LABEL]: prefix };
    return new kplus.k8s.KubeNetworkPolicy(this, "egress", {
      metadata: { name: `${prefix}-egress` },
      spec: {
        podSelector: { matchLabels: instance },
        policyTypes: ["Egress"],
        egress: [
          {
            to: [{ namespaceSelector: {}, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
            ports: [{ protocol: "UDP", port: kplus.k8s.IntOrString.fromNumber(53) }, tcp(53)],
          },
          { to: [{ podSelector: { matchLabels: instance } }] },
          { to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: [tcp(443)] },
          { to: [{ ipBlock: { cidr: EKS_POD_IDENTITY_AGENT } }], ports: [tcp(80)] },
        ],
      },
    });
  }

  /** Tenants' webhooks may listen on any port. */
  private webhooksPolicy(props: PipelineNetworkPoliciesProps): kplus.k8s.KubeNetworkPolicy {
    const { prefix } = props;
    return new kplus.k8s.KubeNetworkPolicy(this, "webhooks", {
      metadata: { name: `${prefix}-deliver-webhooks` },
      spec: {
        podSelector: { matchLabels: componentLabels(prefix, "deliver") },
        policyTypes: ["Egress"],
        egress: [{ to: (props.webhookCidrs ?? ["0.0.0.0/0"]).map((cidr) => ({ ipBlock: { cidr } })) }],
      },
    });
  }
}
