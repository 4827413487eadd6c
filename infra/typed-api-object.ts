import { ApiObject } from "cdk8s";
import type { Construct } from "constructs";

/** A model from `@kubernetes-models/*`: a typed object with a JSON Schema check. */
export interface SchemaCheckedModel {
  readonly apiVersion: string;
  readonly kind: string;
  validate(): void;
  toJSON(): unknown;
}

/**
 * Wraps a `@kubernetes-models` object (KEDA, Knative) in a cdk8s ApiObject
 * after checking it against the CRD's own schema, so a misspelt field fails
 * at synth time on this machine rather than at `kubectl apply`. No network.
 *
 * @example
 * typedApiObject(this, "scaled-object", new ScaledObject({ metadata: { name }, spec }));
 */
export function typedApiObject(scope: Construct, id: string, model: SchemaCheckedModel): ApiObject {
  model.validate();
  const { apiVersion, kind, ...rest } = model.toJSON() as { apiVersion: string; kind: string };
  return new ApiObject(scope, id, { apiVersion, kind, ...rest });
}
