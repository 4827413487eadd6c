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
};

/** Components of the pipeline, as they appear in `app.kubernetes.io/component`. */
export type Component =
  | "model-server"
  | "fallback-model-server"
  | "ingest"
  | "cache"
  | "batcher"
  | "deliver"
  | "reconciler"
  | "bootstrap";

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
