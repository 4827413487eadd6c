import { readdirSync, readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";
import { Deployment } from "kubernetes-models/apps/v1";
import { CronJob, Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { ManifestSchemaError } from "./errors.ts";

/**
 * Where the vendored schemas live: the upstream CRDs of KEDA, Knative Serving
 * and the Prometheus Operator (one folder per project and release, the files
 * exactly as released), and `kubernetes-<version>/fields.json`, the field names
 * of every built-in type deepqueue emits, taken from the Kubernetes OpenAPI
 * models (see manifest-schemas.unit.test.ts, which keeps it in step).
 */
export const CRD_DIR = new URL("./crds/", import.meta.url);
/** The Kubernetes release whose OpenAPI the built-in kinds are checked against. */
export const KUBERNETES_FIELDS_RELEASE = "kubernetes-1.36";

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

/** Built-in kinds: `kubernetes-models` checks types, enums and required fields; fields.json the field names. */
const BUILT_IN: Readonly<Record<string, { model: ModelClass; type: string }>> = {
  "v1/Namespace": { model: Namespace, type: "V1Namespace" },
  "v1/ServiceAccount": { model: ServiceAccount, type: "V1ServiceAccount" },
  "v1/Service": { model: Service, type: "V1Service" },
  "v1/ConfigMap": { model: ConfigMap, type: "V1ConfigMap" },
  "v1/PersistentVolumeClaim": { model: PersistentVolumeClaim, type: "V1PersistentVolumeClaim" },
  "apps/v1/Deployment": { model: Deployment, type: "V1Deployment" },
  "batch/v1/CronJob": { model: CronJob, type: "V1CronJob" },
  "batch/v1/Job": { model: Job, type: "V1Job" },
  "policy/v1/PodDisruptionBudget": { model: PodDisruptionBudget, type: "V1PodDisruptionBudget" },
  "networking.k8s.io/v1/NetworkPolicy": { model: NetworkPolicy, type: "V1NetworkPolicy" },
};

/** The root type of each built-in kind, for the generator of fields.json. */
export const BUILT_IN_ROOT_TYPES: readonly string[] = Object.values(BUILT_IN).map((b) => b.type);

/** type name → field name → field type, in the OpenAPI generator's notation (`Array<X>`, `{ [key: string]: X; }`). */
export type FieldMap = Record<string, Record<string, string>>;

// biome-ignore lint/suspicious/noExplicitAny: JSON Schema documents are free-form.
type Schema = any;

/**
 * A CRD's structural schema made strict: every object that lists its
 * properties refuses others (as the API server prunes, or with
 * `kubectl apply --validate=strict` refuses, unknown fields), except where the
 * CRD itself preserves unknown fields. `x-kubernetes-int-or-string` becomes
 * "integer or string".
 */
export function strictSchema(schema: Schema): Schema {
  if (Array.isArray(schema)) return schema.map(strictSchema);
  if (!schema || typeof schema !== "object") return schema;
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith("x-kubernetes-")) continue;
    if (key === "properties") out[key] = mapValues(value as Schema, strictSchema);
    else if (key === "pattern" && typeof value === "string") out[key] = javascriptPattern(value);
    else out[key] = strictSchema(value);
  }
  if (schema["x-kubernetes-int-or-string"]) {
    delete out.type;
    out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (
    out.type === "object" &&
    out.properties &&
    out.additionalProperties === undefined &&
    !schema["x-kubernetes-preserve-unknown-fields"]
  ) {
    out.additionalProperties = false;
  }
  return out;
}

/**
 * CRD patterns are Go RE2; JavaScript has no inline `(?i)`, so a
 * case-insensitive pattern spells each letter as `[aA]` instead.
 */
export function javascriptPattern(pattern: string): string {
  if (!pattern.includes("(?i)")) return pattern;
  const source = pattern.replace("(?i)", "");
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i] as string;
    if (c === "\\") {
      out += c + (source[i + 1] ?? "");
      i++;
    } else if (c === "[") {
      inClass = true;
      out += c;
    } else if (c === "]") {
      inClass = false;
      out += c;
    } else if (/[a-z]/i.test(c)) {
      out += inClass ? c.toLowerCase() + c.toUpperCase() : `[${c.toLowerCase()}${c.toUpperCase()}]`;
    } else out += c;
  }
  return out;
}

function mapValues(o: Schema, f: (v: Schema) => Schema): Schema {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}

/** Reads every vendored CRD: `group/version/Kind` → its strict schema, with the release it comes from. */
function loadCrds(): Map<string, { schema: Schema; release: string }> {
  const crds = new Map<string, { schema: Schema; release: string }>();
  for (const release of readdirSync(CRD_DIR)) {
    if (release.startsWith("kubernetes-")) continue;
    for (const file of readdirSync(new URL(`${release}/`, CRD_DIR))) {
      if (!file.endsWith(".yaml")) continue;
      const text = readFileSync(new URL(`${release}/${file}`, CRD_DIR), "utf8");
      for (const doc of parseAllDocuments(text)) {
        const crd = doc.toJS() as Schema;
        if (crd?.kind !== "CustomResourceDefinition") continue;
        for (const version of crd.spec.versions) {
          const schema = version.schema?.openAPIV3Schema;
          if (!version.served || !schema) continue;
          crds.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, {
            schema: strictSchema(schema),
            release,
          });
        }
      }
    }
  }
  return crds;
}

/** The vendored field names of the built-in kinds. */
export function loadFieldMap(): FieldMap {
  return JSON.parse(
    readFileSync(new URL(`${KUBERNETES_FIELDS_RELEASE}/fields.json`, CRD_DIR), "utf8"),
  ) as FieldMap;
}

const MAP_TYPE = /^\{ \[key: string\]: (.+); \}$/;
const ARRAY_TYPE = /^Array<(.+)>$/;

/**
 * Walks `value` as the OpenAPI type `type` and returns the path of every field
 * the type does not have. Only names are checked here; types, enums and
 * required fields are `kubernetes-models`' job.
 */
function unknownFields(fields: FieldMap, type: string, value: unknown, path = ""): string[] {
  const array = ARRAY_TYPE.exec(type);
  if (array?.[1]) {
    const item = array[1];
    return Array.isArray(value)
      ? value.flatMap((v, i) => unknownFields(fields, item, v, `${path}/${i}`))
      : [];
  }
  const map = MAP_TYPE.exec(type);
  if (map?.[1]) {
    const item = map[1];
    return value && typeof value === "object"
      ? Object.entries(value).flatMap(([k, v]) => unknownFields(fields, item, v, `${path}/${k}`))
      : [];
  }
  const known = fields[type];
  if (!known || !value || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const fieldType = known[k];
    return fieldType === undefined ? [`${path}/${k}`] : unknownFields(fields, fieldType, v, `${path}/${k}`);
  });
}

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string };
}

let compiled:
  | { crds: Map<string, { validate: ValidateFunction; release: string }>; fields: FieldMap }
  | undefined;

function schemas() {
  if (!compiled) {
    // Formats (int32, date-time, …) are typing hints in CRDs, not checks the API server makes.
    const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
    const crds = new Map<string, { validate: ValidateFunction; release: string }>();
    for (const [key, { schema, release }] of loadCrds()) {
      crds.set(key, { validate: ajv.compile(schema), release });
    }
    compiled = { crds, fields: loadFieldMap() };
  }
  return compiled;
}

/** The `group/version/Kind` keys that have a vendored CRD schema, with the release of each. */
export function vendoredCrds(): Record<string, string> {
  return Object.fromEntries([...schemas().crds].map(([k, v]) => [k, v.release]));
}

/**
 * Checks every synthesized object offline, unknown fields included: built-in
 * kinds against the Kubernetes OpenAPI models (`kubernetes-models` for types
 * and enums, fields.json for field names), custom resources against the
 * vendored upstream CRD schemas with unknown fields as errors, and
 * `metadata` of every object as an ObjectMeta. Throws naming the object and
 * every bad field; a kind with no schema is an error too.
 *
 * @example
 * validateManifests(chart.toJson());
 */
export function validateManifests(objects: readonly unknown[]): void {
  const { crds, fields } = schemas();
  for (const raw of objects) {
    const object = raw as Manifest;
    const key = `${object.apiVersion}/${object.kind}`;
    const where = `${object.kind} ${object.metadata?.name ?? "(unnamed)"}`;
    const builtIn = BUILT_IN[key];
    const crd = crds.get(key);
    const problems: string[] = [];
    if (builtIn) {
      try {
        new builtIn.model(object as never).validate();
      } catch (error) {
        problems.push(error instanceof Error ? error.message : String(error));
      }
      problems.push(...unknownFields(fields, builtIn.type, object).map((p) => `${p}: unknown field`));
    } else if (crd) {
      if (!crd.validate(object)) {
        for (const e of crd.validate.errors ?? []) {
          const field =
            e.keyword === "additionalProperties"
              ? `${e.instancePath}/${(e.params as { additionalProperty: string }).additionalProperty}`
              : e.instancePath;
          problems.push(
            `${field || "/"}: ${e.keyword === "additionalProperties" ? "unknown field" : e.message}`,
          );
        }
      }
      problems.push(
        ...unknownFields(fields, "V1ObjectMeta", object.metadata, "/metadata").map(
          (p) => `${p}: unknown field`,
        ),
      );
    } else {
      throw new ManifestSchemaError(`${where}: no schema known for ${key}`);
    }
    if (problems.length > 0) {
      throw new ManifestSchemaError(`${where} does not match the ${key} schema: ${problems.join("; ")}`);
    }
  }
}
