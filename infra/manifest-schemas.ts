import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { Service as KnativeService } from "@kubernetes-models/knative/serving.knative.dev/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { CronJob, Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount } from "kubernetes-models/v1";

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

/** The schema of every kind deepqueue emits, keyed by `apiVersion/kind`. */
const SCHEMAS: Readonly<Record<string, ModelClass>> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Service": Service,
  "v1/ConfigMap": ConfigMap,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "apps/v1/Deployment": Deployment,
  "batch/v1/CronJob": CronJob,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "serving.knative.dev/v1/Service": KnativeService,
};

/** Kinds emitted without a bundled schema (the Prometheus Operator's CRDs are not packaged). */
const UNCHECKED = new Set(["monitoring.coreos.com/v1/PodMonitor"]);

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string };
}

/**
 * Checks every synthesized object against the JSON Schema of its kind
 * (Kubernetes' OpenAPI for core kinds, the CRDs' own for KEDA and Knative),
 * offline. Throws naming the object and the field; an unknown kind is an
 * error too, so a new kind cannot slip through unchecked.
 *
 * @example
 * validateManifests(chart.toJson());
 */
export function validateManifests(objects: readonly unknown[]): void {
  for (const raw of objects) {
    const object = raw as Manifest;
    const key = `${object.apiVersion}/${object.kind}`;
    const where = `${object.kind} ${object.metadata?.name ?? "(unnamed)"}`;
    if (UNCHECKED.has(key)) continue;
    const Model = SCHEMAS[key];
    if (!Model) throw new Error(`${where}: no schema known for ${key}`);
    try {
      new Model(object as never).validate();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`${where} does not match the ${key} schema: ${reason}`, { cause: error });
    }
  }
}
