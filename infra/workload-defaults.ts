import * as kplus from "cdk8s-plus-33";

/** The uid/gid the functions' image runs as (the `node` user of node:24-slim) and the vLLM pods too. */
export const RUN_AS_USER = 1000;

/**
 * The container hardening every deepqueue container gets: non-root, read-only
 * root filesystem, no privilege escalation, every capability dropped.
 * https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
 */
export const CONTAINER_SECURITY: kplus.ContainerSecurityContextProps = {
  ensureNonRoot: true,
  user: RUN_AS_USER,
  group: RUN_AS_USER,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  capabilities: { drop: [kplus.Capability.ALL] },
  seccompProfile: { type: kplus.SeccompProfileType.RUNTIME_DEFAULT },
};

/** Pod-level counterpart: fsGroup so mounted volumes are writable by the non-root user. */
export const POD_SECURITY: kplus.PodSecurityContextProps = {
  ensureNonRoot: true,
  user: RUN_AS_USER,
  group: RUN_AS_USER,
  fsGroup: RUN_AS_USER,
  // Chown a volume only when its root is not ours yet: "Always" walks hundreds of GB of weights at every start.
  fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH,
};

/** Components of the pipeline, as they appear in `app.kubernetes.io/component`. */
export type Component =
  | "model-server"
  | "fallback-model-server"
  | "ingest"
  | "cache"
  | "batcher"
  | "deliver"
  | "batches"
  | "reconciler"
  | "bootstrap"
  | "model-server-download"
  | "fallback-model-server-download";

/**
 * The recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
 * NetworkPolicies select on component + instance.
 *
 * @example
 * componentLabels("deepqueue", "batcher") // { "app.kubernetes.io/component": "batcher", ... }
 */
export function componentLabels(prefix: string, component: Component): Record<string, string> {
  return {
    "app.kubernetes.io/part-of": "deepqueue",
    "app.kubernetes.io/instance": prefix,
    "app.kubernetes.io/component": component,
  };
}

export const COMPONENT_LABEL = "app.kubernetes.io/component";
export const INSTANCE_LABEL = "app.kubernetes.io/instance";

/** The labels a selector uses: stable ones only (a Deployment's selector is immutable). */
export function selectorLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  const { [COMPONENT_LABEL]: component, [INSTANCE_LABEL]: instance, "app.kubernetes.io/name": name } = labels;
  return {
    ...(instance ? { [INSTANCE_LABEL]: instance } : {}),
    ...(component ? { [COMPONENT_LABEL]: component } : {}),
    ...(name ? { "app.kubernetes.io/name": name } : {}),
  };
}

/**
 * `repository:tag`, or `repository:tag@sha256:…` when a digest is given (the
 * kubelet pulls by digest; the tag stays for people reading the manifest).
 *
 * @example
 * imageReference("vllm/vllm-openai:v0.29.0", "sha256:0123…") // "vllm/vllm-openai:v0.29.0@sha256:0123…"
 */
export function imageReference(image: string, digest?: string): string {
  return digest ? `${image}@${digest}` : image;
}

/** What a platform team sets on every pod and object (values: `pods`, `labels`, `annotations`). */
export interface PlatformOptions {
  readonly imagePullSecrets?: readonly string[];
  /** Not set on the Knative Service: Knative refuses it unless its `kubernetes.podspec-priorityclassname` flag is on. */
  readonly priorityClassName?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

// biome-ignore lint/suspicious/noExplicitAny: synthesized manifests are free-form JSON.
type Json = any;

/** The pod template of a workload manifest, if it has one. */
function podTemplate(o: Json): Json | undefined {
  if (o.kind === "CronJob") return o.spec?.jobTemplate?.spec?.template;
  if (o.kind === "Deployment" || o.kind === "Job") return o.spec?.template;
  if (o.kind === "Service" && o.apiVersion === "serving.knative.dev/v1") return o.spec?.template;
  return undefined;
}

/**
 * Adds the platform's labels and annotations to every object and pod
 * template, and imagePullSecrets and priorityClassName to every pod. Our own
 * labels win over the platform's (selectors and NetworkPolicies rely on them).
 */
export function applyPlatformOptions(o: Json, options: PlatformOptions): Json {
  const decorate = (metadata: Json) => {
    if (options.labels && Object.keys(options.labels).length > 0) {
      metadata.labels = { ...options.labels, ...metadata.labels };
    }
    if (options.annotations && Object.keys(options.annotations).length > 0) {
      metadata.annotations = { ...options.annotations, ...metadata.annotations };
    }
  };
  o.metadata ??= {};
  decorate(o.metadata);
  const template = podTemplate(o);
  if (template) {
    template.metadata ??= {};
    decorate(template.metadata);
    const spec = template.spec;
    if (options.imagePullSecrets && options.imagePullSecrets.length > 0) {
      spec.imagePullSecrets = options.imagePullSecrets.map((name) => ({ name }));
    }
    if (options.priorityClassName && o.apiVersion !== "serving.knative.dev/v1") {
      spec.priorityClassName = options.priorityClassName;
    }
  }
  return o;
}

/** A taint a workload tolerates (values: `tolerations`). */
export interface Toleration {
  readonly key: string;
  readonly operator: "Exists" | "Equal";
  readonly value?: string;
  readonly effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

const TAINT_EFFECTS = {
  NoSchedule: kplus.TaintEffect.NO_SCHEDULE,
  PreferNoSchedule: kplus.TaintEffect.PREFER_NO_SCHEDULE,
  NoExecute: kplus.TaintEffect.NO_EXECUTE,
} as const;

/**
 * Requires `nodeSelector`'s labels (when given) and tolerates each taint, on a workload's pods.
 *
 * @example
 * schedule(deployment, { "karpenter.sh/capacity-type": "spot" }, [{ key: "spot", operator: "Exists", effect: "NoSchedule" }]);
 */
export function schedule(
  workload: kplus.Deployment,
  nodeSelector: Readonly<Record<string, string>> | undefined,
  tolerations: readonly Toleration[],
): void {
  if (nodeSelector) {
    workload.scheduling.attract(
      kplus.Node.labeled(...Object.entries(nodeSelector).map(([k, v]) => kplus.NodeLabelQuery.is(k, v))),
    );
  }
  for (const t of tolerations) {
    const options = { effect: TAINT_EFFECTS[t.effect] };
    workload.scheduling.tolerate(
      kplus.Node.tainted(
        t.operator === "Equal"
          ? kplus.NodeTaintQuery.is(t.key, t.value ?? "", options)
          : kplus.NodeTaintQuery.exists(t.key, options),
      ),
    );
  }
}

/**
 * `defaults` overlaid with the props that are set: a prop given as `undefined` keeps its
 * default, as `props.x ?? default` would.
 *
 * @example
 * withDefaults({ replicas: 1 }, { replicas: undefined, name: "a" }) // { replicas: 1, name: "a" }
 */
export function withDefaults<D extends object, P extends object>(defaults: D, props: P): D & P {
  const set = Object.entries(props).filter(([, value]) => value !== undefined);
  return { ...defaults, ...Object.fromEntries(set) } as D & P;
}
