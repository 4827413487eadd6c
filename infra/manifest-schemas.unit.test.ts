import { readFileSync, writeFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { parser } from "@prometheus-io/lezer-promql";
import { Testing } from "cdk8s";
import { describe, expect, it } from "vitest";
import { DeepqueueChart } from "./chart.ts";
import { loadValuesFile, PROFILES, parseValues, profilePath, type ValuesInput } from "./config.ts";
import {
  BUILT_IN_ROOT_TYPES,
  CRD_DIR,
  type FieldMap,
  javascriptPattern,
  KUBERNETES_FIELDS_RELEASE,
  loadFieldMap,
  strictSchema,
  validateManifests,
  vendoredCrds,
} from "./manifest-schemas.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form JSON; each assertion names the path it reads.
type Manifest = any;

function manifests(input: ValuesInput = {}): Manifest[] {
  return Testing.synth(new DeepqueueChart(Testing.app(), "deepqueue", { values: parseValues(input) }));
}

function profile(name: (typeof PROFILES)[number]): Manifest[] {
  return manifests(loadValuesFile(profilePath(name)));
}

function find(objects: Manifest[], kind: string, name: string): Manifest {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
}

/**
 * The field names of every type reachable from deepqueue's built-in kinds,
 * from the Kubernetes OpenAPI models generated into @kubernetes/client-node
 * (its `attributeTypeMap`: JSON name → type).
 */
function fieldMapFromOpenApiModels(): FieldMap {
  const models = k8s as unknown as Record<
    string,
    { attributeTypeMap?: { baseName: string; type: string }[] } | undefined
  >;
  const out: FieldMap = {};
  const pending = [...BUILT_IN_ROOT_TYPES];
  while (pending.length > 0) {
    const type = pending.pop() as string;
    if (out[type]) continue;
    const attributes = models[type]?.attributeTypeMap;
    if (!attributes) throw new Error(`${type} is not an OpenAPI model of @kubernetes/client-node`);
    out[type] = Object.fromEntries(attributes.map((a) => [a.baseName, a.type]));
    for (const a of attributes) {
      const inner = a.type.replace(/^Array<(.+)>$/, "$1").replace(/^\{ \[key: string\]: (.+); \}$/, "$1");
      if (models[inner]?.attributeTypeMap && !out[inner]) pending.push(inner);
    }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

describe("vendored schemas", () => {
  it("fields.json is the Kubernetes OpenAPI models' field names (UPDATE_K8S_FIELDS=1 rewrites it)", () => {
    const generated = fieldMapFromOpenApiModels();
    const file = new URL(`${KUBERNETES_FIELDS_RELEASE}/fields.json`, CRD_DIR);
    if (process.env.UPDATE_K8S_FIELDS) writeFileSync(file, `${JSON.stringify(generated, null, 1)}\n`);
    expect(loadFieldMap()).toEqual(generated);
    expect(
      readFileSync(
        new URL("../node_modules/@kubernetes/client-node/dist/gen/models/V1Deployment.js", import.meta.url),
        "utf8",
      ),
    ).toContain("OpenAPI spec version: release-1.36");
  });

  it("has a CRD schema, from a named release, for every custom resource deepqueue emits", () => {
    expect(vendoredCrds()).toMatchObject({
      "keda.sh/v1alpha1/ScaledObject": "keda-v2.20.2",
      "keda.sh/v1alpha1/TriggerAuthentication": "keda-v2.20.2",
      "serving.knative.dev/v1/Service": "knative-serving-v1.23.0",
      "monitoring.coreos.com/v1/PodMonitor": "prometheus-operator-v0.93.0",
      "monitoring.coreos.com/v1/PrometheusRule": "prometheus-operator-v0.93.0",
    });
  });

  it("makes CRD schemas strict except where the CRD preserves unknown fields", () => {
    const strict = strictSchema({
      type: "object",
      properties: {
        a: { type: "object", properties: { b: { type: "string" } } },
        free: { type: "object", "x-kubernetes-preserve-unknown-fields": true, properties: {} },
        n: { "x-kubernetes-int-or-string": true },
      },
    });
    expect(strict.additionalProperties).toBe(false);
    expect(strict.properties.a.additionalProperties).toBe(false);
    expect(strict.properties.free.additionalProperties).toBeUndefined();
    expect(strict.properties.n).toEqual({ anyOf: [{ type: "integer" }, { type: "string" }] });
  });
});

describe("strict validation", () => {
  it.each(PROFILES)("%s: every object matches its kind's schema, unknown fields included", (name) => {
    const objects = profile(name);
    expect(() => validateManifests(objects)).not.toThrow();
  });

  it("every profile, every monitoring object, is checked (nothing emitted without a schema)", () => {
    const all = manifests({
      monitoring: { podMonitors: true, prometheusRules: true, grafanaDashboard: true },
    });
    const kinds = new Set(all.map((o: Manifest) => `${o.apiVersion}/${o.kind}`));
    expect(kinds).toContain("monitoring.coreos.com/v1/PrometheusRule");
    expect(kinds).toContain("monitoring.coreos.com/v1/PodMonitor");
    expect(() => validateManifests(all)).not.toThrow();
  });

  it("refuses an unknown field in a custom resource, naming its path", () => {
    const objects = manifests();
    const so = find(objects, "ScaledObject", "deepqueue-model");
    so.spec.pollingIntervall = 15;
    expect(() => validateManifests([so])).toThrow(
      "ScaledObject deepqueue-model does not match the keda.sh/v1alpha1/ScaledObject schema: /spec/pollingIntervall: unknown field",
    );
    const ksvc = find(manifests(), "Service", "deepqueue-ingest");
    ksvc.spec.template.spec.containers[0].readinesProbe = {};
    expect(() => validateManifests([ksvc])).toThrow(
      "/spec/template/spec/containers/0/readinesProbe: unknown field",
    );
    const typed = find(manifests(), "ScaledObject", "deepqueue-model");
    typed.spec.triggers[0].metadata.queueLength = 32;
    expect(() => validateManifests([typed])).toThrow("/spec/triggers/0/metadata/queueLength: must be string");
  });

  it("refuses an unknown field in a built-in kind, and in any object's metadata", () => {
    const deployment = find(manifests(), "Deployment", "deepqueue-cache");
    deployment.spec.template.spec.containers[0].resource = {};
    deployment.metadata.label = {};
    expect(() => validateManifests([deployment])).toThrow(
      "Deployment deepqueue-cache does not match the apps/v1/Deployment schema: /metadata/label: unknown field; /spec/template/spec/containers/0/resource: unknown field",
    );
    const typed = find(manifests(), "Deployment", "deepqueue-cache");
    typed.spec.template.spec.containers[0].ports[0].containerPort = "9090";
    expect(() => validateManifests([typed])).toThrow("Deployment deepqueue-cache does not match");
    const so = find(manifests(), "ScaledObject", "deepqueue-model");
    so.metadata.annotation = {};
    expect(() => validateManifests([so])).toThrow("/metadata/annotation: unknown field");
    expect(() => validateManifests([{ apiVersion: "example.com/v1", kind: "Widget" }])).toThrow(
      "no schema known",
    );
  });
});

/** Every PromQL expression in the manifests: KEDA prometheus triggers and PrometheusRule rules. */
function promql(objects: Manifest[]): { where: string; query: string }[] {
  const out: { where: string; query: string }[] = [];
  for (const o of objects) {
    if (o.kind === "ScaledObject") {
      for (const t of o.spec.triggers) {
        if (t.type === "prometheus")
          out.push({ where: `${o.metadata.name}/${t.name}`, query: t.metadata.query });
      }
    }
    if (o.kind === "PrometheusRule") {
      for (const g of o.spec.groups) {
        for (const r of g.rules)
          out.push({ where: `${o.metadata.name}/${r.alert ?? r.record}`, query: r.expr });
      }
    }
    if (o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1") {
      for (const text of Object.values<string>(o.data)) {
        for (const panel of JSON.parse(text).panels ?? []) {
          for (const target of panel.targets ?? []) out.push({ where: `${panel.title}`, query: target.expr });
        }
      }
    }
  }
  return out;
}

/** The positions of PromQL syntax errors (lezer marks them with error nodes), empty when it parses. */
function syntaxErrors(query: string): number[] {
  const errors: number[] = [];
  parser.parse(query).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(node.from);
    },
  });
  return errors;
}

describe("PromQL", () => {
  it("the parser finds errors (so a pass means something)", () => {
    expect(syntaxErrors("sum(rate(x[5m])")).not.toEqual([]);
    expect(syntaxErrors("sum(rate(x[5m]))")).toEqual([]);
  });

  it.each(PROFILES)("%s: every query in triggers, rules and the dashboard parses", (name) => {
    const values = loadValuesFile(profilePath(name));
    const all = manifests({
      ...(values as unknown as ValuesInput),
      monitoring: { ...values.monitoring, prometheusRules: true, grafanaDashboard: true },
    });
    const queries = promql(all);
    expect(queries.length).toBeGreaterThan(10);
    for (const { where, query } of queries)
      expect({ where, errors: syntaxErrors(query) }).toEqual({ where, errors: [] });
  });
});

describe("javascriptPattern", () => {
  it("spells Go's inline (?i) as letter classes", () => {
    const re = new RegExp(javascriptPattern("^(?i)(abort|warn)?$"), "u");
    expect(re.test("Abort")).toBe(true);
    expect(re.test("WARN")).toBe(true);
    expect(re.test("stop")).toBe(false);
    expect(javascriptPattern("^[a-z]+$")).toBe("^[a-z]+$");
  });
});
