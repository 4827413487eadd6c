/**
 * Priority lanes of an SQS worker: which queue a receive may take from, and how many batch slots
 * each lane may hold. Lane 0 is the top (interactive) lane; the others are served only when the
 * ones above have nothing to receive. No I/O, no timers: the worker (sqs-worker.ts) asks.
 */

/** One receive of the lower lanes' loop: the lane and how long it may wait. */
export interface LaneReceive {
  lane: number;
  waitSeconds: number;
}

/**
 * The receives of one turn of the lower lanes' loop, in order, stopping at the first that returns
 * messages: a zero-wait receive on each lane from the top (so an interactive backlog is taken
 * before batch lines), a long poll on the last. The top lane has its own loop long-polling it.
 *
 * @example lowerLaneReceives(2, 20) // [{ lane: 0, waitSeconds: 0 }, { lane: 1, waitSeconds: 20 }]
 */
export function lowerLaneReceives(lanes: number, waitSeconds: number): LaneReceive[] {
  return Array.from({ length: lanes }, (_, lane) => ({
    lane,
    waitSeconds: lane === lanes - 1 ? waitSeconds : 0,
  }));
}

/**
 * Batch slots by lane. The top lane may use every slot; the lower lanes together at most
 * `concurrency - reservedSlots`, counting their receives under way (a receive may return a
 * batch), so an interactive batch never waits for a slot behind batch lines. A lower lane's long
 * poll counts only against the lower lanes' slots: on an idle batch queue it takes none from
 * interactive work. While interactive work is about (a top-lane batch runs or started within
 * `topQuietMs`), the lower lanes shrink to `busyLowerSlots`: the slots are the model's capacity, and
 * batch lines holding it would slow every interactive answer (a model server batches whatever it
 * is sent). Alone, batch lines use every lower slot.
 *
 * @example
 * const slots = new LaneSlots({ concurrency: 4, reservedSlots: 1 });
 * slots.lowerMayReceive(); // true while fewer than 3 lower-lane batches run or are being received
 */
export class LaneSlots {
  readonly concurrency: number;
  /** Slots the lower lanes may hold together while the top lane is quiet. */
  readonly lowerSlots: number;
  /** Slots the lower lanes may hold together while the top lane has work (or had, `topQuietMs` ago). */
  readonly busyLowerSlots: number;
  readonly #topQuietMs: number;
  readonly #now: () => number;
  #top = 0;
  #lower = 0;
  #lowerReceiving = 0;
  #topLastStarted = Number.NEGATIVE_INFINITY;

  constructor(options: {
    concurrency: number;
    reservedSlots: number;
    /** @default every lower slot (no yielding) */
    busyLowerSlots?: number;
    /** @default 0 */
    topQuietMs?: number;
    now?: () => number;
  }) {
    this.concurrency = options.concurrency;
    this.lowerSlots = options.concurrency - options.reservedSlots;
    this.busyLowerSlots = Math.max(1, Math.min(this.lowerSlots, options.busyLowerSlots ?? this.lowerSlots));
    this.#topQuietMs = options.topQuietMs ?? 0;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Whether interactive work is about: a top-lane batch runs, or one started less than
   * `topQuietMs` ago. Batch lines then yield the model to it (`busyLowerSlots`).
   */
  topBusy(): boolean {
    return this.#top > 0 || this.#now() - this.#topLastStarted < this.#topQuietMs;
  }

  /** Batches running, all lanes. */
  get active(): number {
    return this.#top + this.#lower;
  }

  /** May the top lane's loop receive (a slot is free)? */
  topMayReceive(): boolean {
    return this.active < this.concurrency;
  }

  /** May the lower lanes' loop receive (a slot is free, and one of theirs)? */
  lowerMayReceive(): boolean {
    const slots = this.topBusy() ? this.busyLowerSlots : this.lowerSlots;
    return this.active < this.concurrency && this.#lower + this.#lowerReceiving < slots;
  }

  /** The lower lanes' loop starts (+1) or ends (-1) a turn of receives. */
  lowerReceiving(delta: 1 | -1): void {
    this.#lowerReceiving += delta;
  }

  /** A batch of `lane` starts running. */
  started(lane: number): void {
    if (lane === 0) {
      this.#top += 1;
      this.#topLastStarted = this.#now();
    } else this.#lower += 1;
  }

  /** A batch of `lane` is done. */
  finished(lane: number): void {
    if (lane === 0) this.#top -= 1;
    else this.#lower -= 1;
  }
}
