import { DeepqueueError } from "../functions/shared/errors.ts";

/** A bench run that cannot go on: a stack that would not start, a target that misbehaved, bad arguments. */
export class BenchError extends DeepqueueError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BenchError";
  }
}
