import { Service } from "@kubernetes-models/knative/serving.knative.dev/v1";
import type { ApiObject } from "cdk8s";
import { Construct } from "constructs";
import { typedApiObject } from "./typed-api-object.ts";
import { componentLabels, RUN_AS_USER } from "./workload-defaults.ts";

/** The port ingest listens on; Knative sets PORT to it. */
export const INGEST_PORT = 8080;

export interface IngestServiceProps {
  /** deepqueue prefix, for labels. */
  readonly prefix: string;
  /** Knative Service name. @default `${prefix}-ingest` */
  readonly name?: string;
  readonly image: string;
  /** @default "IfNotPresent" */
  readonly imagePullPolicy?: "IfNotPresent" | "Always" | "Never";
  /** ConfigMap with the functions' environment. */
  readonly configMapName: string;
  readonly serviceAccountName: string;
  /** Knative min-scale. @default 1 */
  readonly minScale?: number;
  /** Knative max-scale. @default 20 */
  readonly maxScale?: number;
  /** Hard limit of requests in flight per pod. @default 100 */
  readonly containerConcurrency?: number;
  /** Requests in flight per pod the KPA aims for. @default 70 */
  readonly targetConcurrency?: number;
  /** @default 30 */
  readonly timeoutSeconds?: number;
  /** @default 500 */
  readonly cpuMillis?: number;
  /** @default 512 */
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
    this.name = props.name ?? `${props.prefix}-ingest`;
    const minScale = props.minScale ?? 1;
    const maxScale = props.maxScale ?? 20;
    const containerConcurrency = props.containerConcurrency ?? 100;
    const target = props.targetConcurrency ?? 70;
    if (minScale > maxScale) {
      throw new Error(`IngestService ${this.name}: minScale (${minScale}) exceeds maxScale (${maxScale})`);
    }
    if (containerConcurrency > 0 && target > containerConcurrency) {
      throw new Error(
        `IngestService ${this.name}: targetConcurrency (${target}) exceeds containerConcurrency (${containerConcurrency})`,
      );
    }
    const cpuMillis = props.cpuMillis ?? 500;
    const memoryMi = props.memoryMi ?? 512;
    this.podLabels = { ...componentLabels(props.prefix, "ingest"), "app.kubernetes.io/name": this.name };

    const service = new Service({
      metadata: { name: this.name, labels: this.podLabels },
      spec: {
        template: {
          metadata: {
            labels: this.podLabels,
            annotations: {
              "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
              "autoscaling.knative.dev/metric": "concurrency",
              "autoscaling.knative.dev/target": String(target),
              // Knative scales at target × utilization (default 70 %): 100 makes the target the number it says.
              "autoscaling.knative.dev/target-utilization-percentage": "100",
              "autoscaling.knative.dev/min-scale": String(minScale),
              "autoscaling.knative.dev/max-scale": String(maxScale),
            },
          },
          spec: {
            serviceAccountName: props.serviceAccountName,
            containerConcurrency,
            timeoutSeconds: props.timeoutSeconds ?? 30,
            containers: [
              {
                name: "ingest",
                image: props.image,
                imagePullPolicy: props.imagePullPolicy ?? "IfNotPresent",
                command: ["deepqueue", "serve", "ingest"],
                // Knative sets PORT from this (and refuses a user-set PORT).
                ports: [{ name: "http1", containerPort: INGEST_PORT }],
                envFrom: [{ configMapRef: { name: props.configMapName } }],
                // Knative accepts only the serving port here, and rewrites the probe to go through its queue-proxy.
                readinessProbe: { httpGet: { path: "/healthz", port: INGEST_PORT }, periodSeconds: 5 },
                resources: {
                  requests: { cpu: `${cpuMillis}m`, memory: `${memoryMi}Mi` },
                  limits: { cpu: `${cpuMillis * 4}m`, memory: `${memoryMi}Mi` },
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
              },
            ],
          },
        },
      },
    });
    this.apiObject = typedApiObject(this, "knative-service", service);
  }
}
