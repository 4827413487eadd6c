import { Duration, Size } from "cdk8s";
import * as kplus from "cdk8s-plus-33";
import { Construct } from "constructs";
import { z } from "zod";
import { modelServersPolicy, tcp } from "./network-policies.ts";
import {
  COMPONENT_LABEL,
  CONTAINER_SECURITY,
  INSTANCE_LABEL,
  POD_SECURITY,
  withDefaults,
} from "./workload-defaults.ts";

/** The dashboard's port in its pod (`kubectl port-forward svc/<prefix>-dashboard 8090`). */
export const DASHBOARD_PORT = 8090;

const K8S_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** The dashboard's resources unless told otherwise (values: `dashboard`). */
export const DASHBOARD_DEPLOYMENT_DEFAULTS = { cpuMillis: 100, memoryMi: 192 } as const;

/** `dashboard:` in values.yaml. Off by default; when on, only reachable inside the cluster. */
export const dashboardValuesSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe("deploy the operator's dashboard (`deepqueue dashboard`)"),
    adminTokenSecret: z
      .strictObject({
        name: z
          .string()
          .regex(K8S_NAME)
          .default("deepqueue-dashboard")
          .describe("Secret holding the admin token (at least 16 characters)"),
        key: z.string().min(1).default("token").describe("key inside that Secret"),
      })
      .prefault({})
      .describe("DEEPQUEUE_ADMIN_TOKEN, from a Secret you create (kubectl create secret generic …)"),
    cpuMillis: z
      .number()
      .int()
      .min(50)
      .default(DASHBOARD_DEPLOYMENT_DEFAULTS.cpuMillis)
      .describe("CPU request (limit: 4×)"),
    memoryMi: z
      .number()
      .int()
      .min(64)
      .default(DASHBOARD_DEPLOYMENT_DEFAULTS.memoryMi)
      .describe("memory request and limit"),
    roleArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, "an IAM role ARN")
      .optional()
      .describe(
        "IAM role for its ServiceAccount (read queues and tables, redrive DLQs); default: aws.roleArn",
      ),
  })
  .prefault({})
  .describe("the operator's dashboard: a ClusterIP Service, reached with kubectl port-forward");
export type DashboardValues = z.infer<typeof dashboardValuesSchema>;

export interface DashboardProps {
  readonly prefix: string;
  readonly image: string;
  /** @default kplus.ImagePullPolicy.IF_NOT_PRESENT */
  readonly imagePullPolicy?: kplus.ImagePullPolicy;
  /** The functions' ConfigMap: endpoints, prefix, INFERENCE_URL (whose /metrics the dashboard reads). */
  readonly config: kplus.IConfigMap;
  readonly adminTokenSecret: { readonly name: string; readonly key: string };
  /** @default undefined (no IRSA annotation) */
  readonly roleArn?: string;
  /** @default DASHBOARD_DEPLOYMENT_DEFAULTS.cpuMillis */
  readonly cpuMillis?: number;
  /** @default DASHBOARD_DEPLOYMENT_DEFAULTS.memoryMi */
  readonly memoryMi?: number;
  /**
   * Also emit a NetworkPolicy letting the dashboard read the model servers'
   * `/metrics` (policies add up: this one opens only that). @default undefined (no policy)
   */
  readonly modelServerPort?: number;
}

/**
 * `deepqueue dashboard` as one Deployment behind a ClusterIP Service: never
 * exposed outside the cluster, reached with `kubectl port-forward`, and
 * behind DEEPQUEUE_ADMIN_TOKEN (it listens on the pod IP, which is not
 * loopback, so the token is always required).
 *
 * @example
 * new DashboardDeployment(chart, "dashboard", { prefix: "deepqueue", image, config,
 *   adminTokenSecret: { name: "deepqueue-dashboard", key: "token" } });
 */
export class DashboardDeployment extends Construct {
  readonly deployment: kplus.Deployment;
  readonly service: kplus.Service;
  readonly networkPolicy?: kplus.k8s.KubeNetworkPolicy;

  constructor(scope: Construct, id: string, props: DashboardProps) {
    super(scope, id);
    const name = `${props.prefix}-dashboard`;
    const labels = {
      "app.kubernetes.io/part-of": "deepqueue",
      [INSTANCE_LABEL]: props.prefix,
      [COMPONENT_LABEL]: "dashboard",
      "app.kubernetes.io/name": name,
    };
    const serviceAccount = new kplus.ServiceAccount(this, "service-account", {
      metadata: {
        name,
        labels,
        ...(props.roleArn ? { annotations: { "eks.amazonaws.com/role-arn": props.roleArn } } : {}),
      },
      automountToken: false,
    });
    this.deployment = new kplus.Deployment(this, "deployment", {
      metadata: { name, labels },
      podMetadata: { labels },
      // Sessions live in memory: one replica, so a login holds.
      replicas: 1,
      serviceAccount,
      automountServiceAccountToken: false,
      securityContext: POD_SECURITY,
    });
    this.deployment.addContainer(this.container(props));
    this.service = new kplus.Service(this, "service", {
      metadata: { name, labels },
      type: kplus.ServiceType.CLUSTER_IP,
      selector: this.deployment,
      ports: [{ name: "http", port: DASHBOARD_PORT, targetPort: DASHBOARD_PORT }],
    });

    if (props.modelServerPort !== undefined)
      this.networkPolicy = this.modelMetricsPolicy(name, props.prefix, props.modelServerPort);
  }

  /** `deepqueue dashboard` on the pod IP, behind the admin token from its Secret. */
  private container(props: DashboardProps): kplus.ContainerProps {
    const { cpuMillis, memoryMi } = withDefaults(DASHBOARD_DEPLOYMENT_DEFAULTS, props);
    const secret = kplus.Secret.fromSecretName(this, "admin-token", props.adminTokenSecret.name);
    return {
      name: "dashboard",
      image: props.image,
      imagePullPolicy: props.imagePullPolicy ?? kplus.ImagePullPolicy.IF_NOT_PRESENT,
      command: ["deepqueue", "dashboard"],
      ports: [{ name: "http", number: DASHBOARD_PORT }],
      envFrom: [kplus.Env.fromConfigMap(props.config)],
      envVariables: {
        DEEPQUEUE_DASHBOARD_HOST: kplus.EnvValue.fromValue("0.0.0.0"),
        DEEPQUEUE_DASHBOARD_PORT: kplus.EnvValue.fromValue(String(DASHBOARD_PORT)),
        DEEPQUEUE_ADMIN_TOKEN: kplus.EnvValue.fromSecretValue({ secret, key: props.adminTokenSecret.key }),
      },
      resources: {
        cpu: { request: kplus.Cpu.millis(cpuMillis), limit: kplus.Cpu.millis(cpuMillis * 4) },
        memory: { request: Size.mebibytes(memoryMi), limit: Size.mebibytes(memoryMi) },
      },
      securityContext: CONTAINER_SECURITY,
      readiness: kplus.Probe.fromHttpGet("/healthz", {
        port: DASHBOARD_PORT,
        periodSeconds: Duration.seconds(10),
      }),
      liveness: kplus.Probe.fromTcpSocket({ port: DASHBOARD_PORT, periodSeconds: Duration.seconds(20) }),
    };
  }

  /** Lets the dashboard read the model servers' /metrics (policies add up: this one opens only that). */
  private modelMetricsPolicy(
    name: string,
    prefix: string,
    modelServerPort: number,
  ): kplus.k8s.KubeNetworkPolicy {
    return modelServersPolicy(this, "model-metrics", `${name}-model-metrics`, prefix, [
      {
        from: [
          { podSelector: { matchLabels: { [INSTANCE_LABEL]: prefix, [COMPONENT_LABEL]: "dashboard" } } },
        ],
        ports: [tcp(modelServerPort)],
      },
    ]);
  }
}
