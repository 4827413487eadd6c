import { DeepqueueError } from "../shared/errors.ts";

/**
 * Counts requests in flight to the model server (K per replica): a prompt
 * array of n prompts takes n permits, a chat call one. Waiters are served in
 * arrival order so a large batch is not starved by single calls.
 *
 * Hand-written on purpose: the permits are weighted (a prompt array of n takes n of K), which
 * p-limit (a count of calls) cannot express.
 *
 * @example
 * const slots = new Semaphore(64);
 * const release = await slots.acquire(10);
 * try { await callModel(); } finally { release(); }
 */
export class Semaphore {
  #free: number;
  readonly #waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1)
      throw new DeepqueueError(`semaphore size must be a positive integer, got ${size}`);
    this.#free = size;
  }

  get inUse(): number {
    return this.size - this.#free;
  }

  async acquire(n = 1): Promise<() => void> {
    const take = Math.min(n, this.size);
    if (this.#waiters.length === 0 && this.#free >= take) {
      this.#free -= take;
    } else {
      await new Promise<void>((resolve) => this.#waiters.push({ n: take, resolve }));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#free += take;
      this.#drain();
    };
  }

  #drain(): void {
    while (this.#waiters.length > 0 && this.#free >= this.#waiters[0]!.n) {
      const next = this.#waiters.shift()!;
      this.#free -= next.n;
      next.resolve();
    }
  }
}
