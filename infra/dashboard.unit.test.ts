import { Testing } from "cdk8s";
import { describe, expect, it } from "vitest";
import { DeepqueueChart } from "./chart.ts";
import { parseValues, type ValuesInput } from "./config.ts";
import { DASHBOARD_PORT } from "./dashboard.ts";
import { validateManifests } from "./manifest-schemas.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form JSON; each assertion names the path it reads.
type Manifest = any;

function manifests(input: ValuesInput = {}): Manifest[] {
  return Testing.synth(new DeepqueueChart(Testing.app(), "deepqueue", { values: parseValues(input) }));
}

describe("the dashboard in synth", () => {
  it("is off by default", () => {
    const objects = manifests();
    expect(
      objects.filter((o) => o.metadata?.labels?.["app.kubernetes.io/component"] === "dashboard"),
    ).toEqual([]);
    expect(objects.find((o) => o.metadata?.name === "deepqueue-dashboard")).toBeUndefined();
  });

  it("when enabled: one Deployment behind a ClusterIP Service, the token from a Secret, nothing exposed", () => {
    const objects = manifests({ dashboard: { enabled: true, adminTokenSecret: { name: "ops-token" } } });
    const deployment = objects.find(
      (o) => o.kind === "Deployment" && o.metadata.name === "deepqueue-dashboard",
    );
    expect(deployment.spec.replicas).toBe(1);
    const container = deployment.spec.template.spec.containers[0];
    expect(container.command).toEqual(["deepqueue", "dashboard"]);
    const env = Object.fromEntries(container.env.map((e: Manifest) => [e.name, e.value ?? e.valueFrom]));
    expect(env.DEEPQUEUE_ADMIN_TOKEN).toEqual({ secretKeyRef: { name: "ops-token", key: "token" } });
    expect(env.DEEPQUEUE_DASHBOARD_HOST).toBe("0.0.0.0");
    expect(container.envFrom).toEqual([{ configMapRef: { name: "deepqueue-config" } }]);
    expect(container.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true });

    const service = objects.find((o) => o.kind === "Service" && o.metadata.name === "deepqueue-dashboard");
    expect(service.spec.type).toBe("ClusterIP");
    expect(service.spec.ports).toEqual([
      expect.objectContaining({ port: DASHBOARD_PORT, targetPort: DASHBOARD_PORT }),
    ]);
    expect(
      objects.some(
        (o) => o.kind === "Ingress" || o.spec?.type === "LoadBalancer" || o.spec?.type === "NodePort",
      ),
    ).toBe(false);

    // The model servers admit the dashboard on their port (for /metrics), by a policy of its own.
    const policy = objects.find(
      (o) => o.kind === "NetworkPolicy" && o.metadata.name === "deepqueue-dashboard-model-metrics",
    );
    expect(policy.spec.ingress[0].from[0].podSelector.matchLabels["app.kubernetes.io/component"]).toBe(
      "dashboard",
    );
    expect(() => validateManifests(objects)).not.toThrow();
  });

  it("refuses an unknown dashboard field by name", () => {
    expect(() => parseValues({ dashboard: { enabled: true, port: 1 } } as ValuesInput)).toThrow(/dashboard/);
  });
});
