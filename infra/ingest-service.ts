import { Service } from "@kubernetes-models/knative/serving.knative.dev/v1";
import type { ApiObject } from "cdk8s";
import { Construct } from "constructs";
import type { IContainer } from "kubernetes-models/v1/Container";
import { PropsError } from "./errors.ts";
import { typedApiObject } from "./typed-api-object.ts";
import { componentLabels, RUN_AS_USER, withDefaults } from "./workload-defaults.ts";

/** The port ingest listens on; Knative sets PORT to it. */
const INGEST_PORT = 8080;

/** Ingest's scaling and resources unless told otherwise (values: `functions.ingest`). */
export const INGEST_SERVICE_DEFAULTS = {
  minScale: 1,
  maxScale: 20,
  containerConcurrency: 100,
  targetConcurrency: 70,
  // A chat or text completion's caller waits on the line for its answer: up to the chat deadline
  // (DEEPQUEUE_CHAT_DEADLINE_SECONDS, 120) + 15 s; other routes answer in milliseconds.
  timeoutSeconds: 150,
  cpuMillis: 500,
  // Peak RSS measured 307 MiB with the tokenizer; a long prompt starts the tokenizer's worker
  // thread, which loads a second copy (~100-190 MiB).
  memoryMi: 768,
  imagePullPolicy: "IfNotPresent",
} as const;

export interface IngestServiceProps {
  /** deepqueue prefix, for labels. */
  readonly prefix: string;
  /** Knative Service name. @default `${prefix}-ingest` */
  readonly name?: string;
  readonly image: string;
  /** @default INGEST_SERVICE_DEFAULTS.imagePullPolicy */
  readonly imagePullPolicy?: "IfNotPresent" | "Always" | "Never";
  /** ConfigMap with the functions' environment. */
  readonly configMapName: string;
  readonly serviceAccountName: string;
  /** Knative min-scale. @default INGEST_SERVICE_DEFAULTS.minScale */
  readonly minScale?: number;
  /** Knative max-scale. @default INGEST_SERVICE_DEFAULTS.maxScale */
  readonly maxScale?: number;
  /** Hard limit of requests in flight per pod. @default INGEST_SERVICE_DEFAULTS.containerConcurrency */
  readonly containerConcurrency?: number;
  /** Requests in flight per pod the KPA aims for. @default INGEST_SERVICE_DEFAULTS.targetConcurrency */
  readonly targetConcurrency?: number;
  /** @default INGEST_SERVICE_DEFAULTS.timeoutSeconds */
  readonly timeoutSeconds?: number;
  /** @default INGEST_SERVICE_DEFAULTS.cpuMillis */
  readonly cpuMillis?: number;
  /** @default INGEST_SERVICE_DEFAULTS.memoryMi */
  readonly memoryMi?: number;
}

/**
 * The ingest function as a Knative Service (serving.knative.dev/v1), scaled
 * by the Knative Pod Autoscaler on in-flight requests. Typed and
 * schema-checked with `@kubernetes-models/knative`.
 * https://knative.dev/docs/serving/autoscaling/
 *
 * @example
 * new IngestService(chart, "ingest", { prefix: "deepqueue", image, configMapName: "deepqueue-config",
 *   serviceAccountName: "deepqueue-ingest" });
 */
export class IngestService extends Construct {
  readonly name: string;
  readonly apiObject: ApiObject;
  readonly podLabels: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: IngestServiceProps) {
    super(scope, id);
    const p = withDefaults(INGEST_SERVICE_DEFAULTS, props);
    this.name = p.name ?? `${p.prefix}-ingest`;
    if (p.minScale > p.maxScale) {
      throw new PropsError(
        `IngestService ${this.name}`,
        `minScale (${p.minScale}) exceeds maxScale (${p.maxScale})`,
      );
    }
    if (p.containerConcurrency > 0 && p.targetConcurrency > p.containerConcurrency) {
      throw new PropsError(
        `IngestService ${this.name}`,
        `targetConcurrency (${p.targetConcurrency}) exceeds containerConcurrency (${p.containerConcurrency})`,
      );
    }
    this.podLabels = { ...componentLabels(p.prefix, "ingest"), "app.kubernetes.io/name": this.name };
    const service = new Service({
      metadata: { name: this.name, labels: this.podLabels },
      spec: {
        template: {
          metadata: {
            labels: this.podLabels,
            annotations: {
              "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
              "autoscaling.knative.dev/metric": "concurrency",
              "autoscaling.knative.dev/target": String(p.targetConcurrency),
              // Knative scales at target × utilization (default 70 %): 100 makes the target the number it says.
              "autoscaling.knative.dev/target-utilization-percentage": "100",
              "autoscaling.knative.dev/min-scale": String(p.minScale),
              "autoscaling.knative.dev/max-scale": String(p.maxScale),
            },
          },
          spec: {
            serviceAccountName: p.serviceAccountName,
            containerConcurrency: p.containerConcurrency,
            timeoutSeconds: p.timeoutSeconds,
            containers: [ingestContainer(p)],
          },
        },
      },
    });
    this.apiObject = typedApiObject(this, "knative-service", service);
  }
}

/** `deepqueue serve ingest` on the serving port, with the hardening every container gets. */
function ingestContainer(
  p: IngestServiceProps & Required<Pick<IngestServiceProps, keyof typeof INGEST_SERVICE_DEFAULTS>>,
): IContainer {
  return {
    name: "ingest",
    image: p.image,
    imagePullPolicy: p.imagePullPolicy,
    command: ["deepqueue", "serve", "ingest"],
    // Knative sets PORT from this (and refuses a user-set PORT).
    ports: [{ name: "http1", containerPort: INGEST_PORT }],
    envFrom: [{ configMapRef: { name: p.configMapName } }],
    // Knative accepts only the serving port here, and rewrites the probe to go through its queue-proxy.
    readinessProbe: { httpGet: { path: "/healthz", port: INGEST_PORT }, periodSeconds: 5 },
    resources: {
      requests: { cpu: `${p.cpuMillis}m`, memory: `${p.memoryMi}Mi` },
      limits: { cpu: `${p.cpuMillis * 4}m`, memory: `${p.memoryMi}Mi` },
    },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS_USER,
      runAsGroup: RUN_AS_USER,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
  };
}
