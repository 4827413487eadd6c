import { AsyncLocalStorage } from "node:async_hooks";

/**
 * Receipt handles whose visibility a handler has set itself (a retry delay): the worker runtime's
 * heartbeat must not extend those. Each SQS worker owns one and runs its handler inside it
 * (`visibilityClaims.run(claims, …)`); `retryLater` registers through `claimVisibility`, which is
 * a no-op on Lambda (no heartbeat, no claims).
 *
 * Why AsyncLocalStorage and not the Lambda context: retries are scheduled deep inside the
 * handlers' logic (deferRecord in the cache and batcher), which takes no Lambda types; the
 * storage hands the worker's own registry to them without a module-global Set or a context
 * parameter through every layer. The storage object holds no state of its own.
 *
 * @example
 * const claims = new VisibilityClaims();
 * await visibilityClaims.run(claims, () => handler(event, context));
 * claims.has(receiptHandle); // true when the handler called retryLater for it
 */
export class VisibilityClaims {
  readonly #handles = new Set<string>();

  add(receiptHandle: string): void {
    this.#handles.add(receiptHandle);
  }

  has(receiptHandle: string): boolean {
    return this.#handles.has(receiptHandle);
  }

  /** Forgets a handle once its message is deleted or released. */
  delete(receiptHandle: string): void {
    this.#handles.delete(receiptHandle);
  }
}

/** The running worker's claims, for the duration of one handler invocation. */
export const visibilityClaims = new AsyncLocalStorage<VisibilityClaims>();

/** Notes that the running handler set `receiptHandle`'s visibility itself. */
export function claimVisibility(receiptHandle: string): void {
  visibilityClaims.getStore()?.add(receiptHandle);
}
