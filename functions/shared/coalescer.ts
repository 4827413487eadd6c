import { DeepqueueError } from "./errors.ts";

/**
 * Group commit for AWS calls that have a batch form (SendMessageBatch,
 * DeleteMessageBatch, BatchWriteItem, one counter update for many requests):
 * items submitted together (continuations resumed by the same event: a
 * micro-batch's results, finished together) go out in one call. An idle
 * coalescer makes that call at once (no added latency at low load); with a
 * flush in flight, items gather until the end of the event loop's turn, and
 * at `maxConcurrent` until a flush returns; the next flush takes up to
 * `maxBatch` of them. Under load, batches form by
 * themselves, and the per-call cost of the SDK (middleware, signing, HTTP) is
 * paid once per batch instead of once per item.
 *
 * Each caller's promise settles with its own item's outcome: `flush` returns
 * one result per item, in order, an `Error` for an item that failed alone;
 * a thrown error fails every item of that flush.
 *
 * @example
 * const sends = new Coalescer<string, void>({ maxBatch: 10 }, async (bodies) => sendBatch(bodies));
 * await sends.submit(JSON.stringify(event));
 */
export interface CoalescerOptions {
  /** Items per flush (SQS batches hold 10, BatchWriteItem 25). */
  maxBatch: number;
  /** Flushes in flight at once before items start to wait. @default 1 */
  maxConcurrent?: number;
  /**
   * Items that share a key go out together; different keys never share a flush (a queue URL, a
   * tenant). @default one key for all
   */
  key?: (item: never) => string;
}

interface Waiting<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

export class Coalescer<T, R> {
  readonly #maxBatch: number;
  readonly #maxConcurrent: number;
  readonly #key: (item: T) => string;
  readonly #flush: (items: T[], key: string) => Promise<Array<R | Error>>;
  /** Items waiting, by key, in arrival order. */
  readonly #waiting = new Map<string, Array<Waiting<T, R>>>();
  #inFlight = 0;
  /** A pump is queued (a microtask or, with a flush in flight, an immediate) and has not run yet. */
  #scheduled = false;

  constructor(options: CoalescerOptions, flush: (items: T[], key: string) => Promise<Array<R | Error>>) {
    if (!Number.isInteger(options.maxBatch) || options.maxBatch < 1) {
      throw new RangeError(`Coalescer: maxBatch must be a positive integer, got ${options.maxBatch}`);
    }
    this.#maxBatch = options.maxBatch;
    this.#maxConcurrent = options.maxConcurrent ?? 1;
    this.#key = (options.key as ((item: T) => string) | undefined) ?? (() => "");
    this.#flush = flush;
  }

  /** Items waiting for a flush (tests, metrics). */
  get waiting(): number {
    let n = 0;
    for (const list of this.#waiting.values()) n += list.length;
    return n;
  }

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const key = this.#key(item);
      let list = this.#waiting.get(key);
      if (!list) {
        list = [];
        this.#waiting.set(key, list);
      }
      list.push({ item, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * When to pump. With nothing in flight, once the submissions queued so far are all in (a
   * microtask): a lone request's call goes out at once, and continuations resumed together (a
   * micro-batch's requests after one awaited write) share it. With a flush already in flight, at
   * the end of this turn of the event loop (setImmediate): requests that arrived together on
   * separate connections (ten producers answering ten results of one receive) are each handled
   * in a callback of their own within the same turn, and now share the next call, rather than
   * the first two taking both slots and the rest waiting a round trip for one. A lone request
   * never waits for a turn: an idle coalescer pumps in the microtask.
   */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const pump = () => {
      this.#scheduled = false;
      this.#pump();
    };
    if (this.#inFlight === 0) queueMicrotask(pump);
    else setImmediate(pump);
  }

  #pump(): void {
    while (this.#inFlight < this.#maxConcurrent && this.#waiting.size > 0) {
      // The key that has waited longest goes first (Map keeps insertion order).
      const [key, list] = this.#waiting.entries().next().value as [string, Array<Waiting<T, R>>];
      const batch = list.splice(0, this.#maxBatch);
      if (list.length === 0) this.#waiting.delete(key);
      this.#inFlight += 1;
      void this.#run(batch, key).finally(() => {
        this.#inFlight -= 1;
        this.#pump();
      });
    }
  }

  async #run(batch: Array<Waiting<T, R>>, key: string): Promise<void> {
    try {
      const results = await this.#flush(
        batch.map((w) => w.item),
        key,
      );
      for (const [n, waiting] of batch.entries()) {
        const result = results[n];
        if (result instanceof Error) waiting.reject(result);
        else if (n >= results.length)
          waiting.reject(new DeepqueueError("Coalescer: flush returned too few results"));
        else waiting.resolve(result as R);
      }
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
