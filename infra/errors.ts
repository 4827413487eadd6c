import { DeepqueueError } from "../functions/shared/errors.ts";

/** A construct's props contradict each other (or the catalogue); the message names the construct and the props. */
export class PropsError extends DeepqueueError {
  constructor(construct: string, message: string) {
    super(`${construct}: ${message}`);
    this.name = "PropsError";
  }
}

/** A synthesized manifest that does not match its Kubernetes or CRD schema. */
export class ManifestSchemaError extends DeepqueueError {
  constructor(message: string) {
    super(message);
    this.name = "ManifestSchemaError";
  }
}
