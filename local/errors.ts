import { DeepqueueError } from "../functions/shared/errors.ts";

/** The local stack (emulators, simulator, the functions as child processes) could not start as asked. */
export class DevStackError extends DeepqueueError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DevStackError";
  }
}
