/**
 * The simulator's latency model: continuous batching as vLLM schedules it,
 * reduced to what a pipeline in front of it can observe.
 *
 * - At most `maxNumSeqs` sequences run at once, and only while their KV-cache
 *   reservation (prompt + max_tokens) fits `kvCacheTokens`; the rest wait in
 *   a FIFO queue of at most `maxWaitingQueueLength`.
 * - Time to first token = (prefill overhead + prompt tokens × per-token time) × load factor.
 * - Each further token takes inter-token latency × load factor.
 * - The load factor grows linearly from 1 (one sequence running) to
 *   `timeFactorUnderLoad` (max-num-seqs running), as in llm-d-inference-sim:
 *   a bigger batch makes every step slower, but less than proportionally, so
 *   total throughput rises with concurrency and then saturates at max-num-seqs.
 *
 * The engine runs on a `Clock`, so a unit test can drive it with a
 * `VirtualClock` and measure throughput without wall-clock time.
 */

export interface LatencyParams {
  prefillOverheadMs: number;
  prefillTimePerTokenMs: number;
  interTokenLatencyMs: number;
  timeFactorUnderLoad: number;
  /** Multiplies every latency (0 = instant). */
  timeScale: number;
  maxNumSeqs: number;
}

/** 1 with one sequence running, `timeFactorUnderLoad` at max-num-seqs, linear between. */
export function loadFactor(running: number, params: LatencyParams): number {
  if (params.maxNumSeqs <= 1 || running <= 1) return 1;
  const n = Math.min(running, params.maxNumSeqs);
  return 1 + ((params.timeFactorUnderLoad - 1) * (n - 1)) / (params.maxNumSeqs - 1);
}

/** Prefill time of a prompt, with `running` sequences in the batch (this one included). */
export function timeToFirstTokenMs(promptTokens: number, running: number, params: LatencyParams): number {
  const base = params.prefillOverheadMs + promptTokens * params.prefillTimePerTokenMs;
  return base * loadFactor(running, params) * params.timeScale;
}

/** Time of one decode step, with `running` sequences in the batch. */
export function interTokenLatencyMs(running: number, params: LatencyParams): number {
  return params.interTokenLatencyMs * loadFactor(running, params) * params.timeScale;
}

/**
 * Decode throughput of the whole server in tokens per second with
 * `concurrency` sequences decoding (beyond max-num-seqs the rest wait).
 *
 * @example
 * decodeTokensPerSecond(64, params) / decodeTokensPerSecond(1, params); // ≈ 25 with the defaults
 */
export function decodeTokensPerSecond(concurrency: number, params: LatencyParams): number {
  const running = Math.max(1, Math.min(concurrency, params.maxNumSeqs));
  return (running * 1000) / interTokenLatencyMs(running, { ...params, timeScale: 1 });
}

// ---------------------------------------------------------------- clocks

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** Wall-clock time; a zero delay runs on the next turn of the event loop, not after Node's 1 ms minimum. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => (ms <= 0 ? { immediate: setImmediate(fn) } : { timeout: setTimeout(fn, ms) }),
  clearTimer: (handle) => {
    const h = handle as { immediate?: NodeJS.Immediate; timeout?: NodeJS.Timeout };
    if (h.immediate) clearImmediate(h.immediate);
    if (h.timeout) clearTimeout(h.timeout);
  },
};

interface VirtualTimer {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/** A deterministic clock for tests: time moves only when `advance()` is called. */
export class VirtualClock implements Clock {
  private time = 0;
  private order = 0;
  private timers: VirtualTimer[] = [];

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const timer: VirtualTimer = {
      at: this.time + Math.max(0, ms),
      order: this.order++,
      fn,
      cancelled: false,
    };
    // Keep the list sorted by (at, order): binary search for the insertion point.
    let lo = 0;
    let hi = this.timers.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const t = this.timers[mid]!;
      if (t.at < timer.at || (t.at === timer.at && t.order < timer.order)) lo = mid + 1;
      else hi = mid;
    }
    this.timers.splice(lo, 0, timer);
    return timer;
  }

  clearTimer(handle: unknown): void {
    (handle as VirtualTimer).cancelled = true;
  }

  /** Runs every timer due within `ms`, in order, then sets the time to now + ms. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.time = next.at;
      if (!next.cancelled) next.fn();
    }
    this.time = until;
  }
}

// ---------------------------------------------------------------- engine

export interface SequenceSpec {
  promptTokens: number;
  /** Tokens this sequence will generate (≤ maxTokens). */
  outputTokens: number;
  /** Reserved in the KV cache with the prompt. */
  maxTokens: number;
}

export interface SequenceEvents {
  /** The sequence left the waiting queue after `queueMs`. */
  onStart?(queueMs: number): void;
  /** Token `index` (1-based) is out; `gapMs` since the previous one (the TTFT for the first). */
  onToken(index: number, gapMs: number): void;
  onFinish(): void;
}

export interface EngineLimits {
  maxNumSeqs: number;
  maxWaitingQueueLength: number;
  kvCacheTokens: number;
}

interface Sequence {
  spec: SequenceSpec;
  events: SequenceEvents;
  enqueuedAt: number;
  lastTokenAt: number;
  /** When the next token is due on the ideal timeline (timers fire late and in whole ms; the timeline does not drift). */
  dueAt: number;
  generated: number;
  timer?: unknown;
  state: "waiting" | "running" | "done";
}

export type SequenceHandle = object;

/**
 * A continuous-batching scheduler. `params` is read at every step, so a
 * runtime change (time scale, latencies) applies to sequences in flight.
 *
 * @example
 * const engine = new BatchEngine(() => params, limits, realClock);
 * const handle = engine.submit({ promptTokens: 12, outputTokens: 40, maxTokens: 64 }, events);
 * if (!handle) reply429();
 */
export class BatchEngine {
  private readonly running = new Set<Sequence>();
  private readonly waiting: Sequence[] = [];
  private kvReserved = 0;

  constructor(
    private readonly params: () => LatencyParams,
    private readonly limits: EngineLimits,
    private readonly clock: Clock = realClock,
  ) {}

  get numRunning(): number {
    return this.running.size;
  }

  get numWaiting(): number {
    return this.waiting.length;
  }

  /** KV-cache blocks in use, 0..1: the prompt and generated tokens of running sequences. */
  get kvCacheUsage(): number {
    let used = 0;
    for (const seq of this.running) used += seq.spec.promptTokens + seq.generated;
    return Math.min(1, used / this.limits.kvCacheTokens);
  }

  /** Starts or queues a sequence; `undefined` when the waiting queue is full. */
  submit(spec: SequenceSpec, events: SequenceEvents): SequenceHandle | undefined {
    const seq: Sequence = {
      spec,
      events,
      enqueuedAt: this.clock.now(),
      lastTokenAt: 0,
      dueAt: 0,
      generated: 0,
      state: "waiting",
    };
    if (this.waiting.length === 0 && this.canAdmit(seq)) {
      this.start(seq);
      return seq;
    }
    if (this.waiting.length >= this.limits.maxWaitingQueueLength) return undefined;
    this.waiting.push(seq);
    return seq;
  }

  /** Stops a sequence (its client went away) and frees its slot. */
  cancel(handle: SequenceHandle): void {
    const seq = handle as Sequence;
    if (seq.state === "done") return;
    if (seq.timer !== undefined) this.clock.clearTimer(seq.timer);
    if (seq.state === "waiting") {
      const i = this.waiting.indexOf(seq);
      if (i >= 0) this.waiting.splice(i, 1);
      seq.state = "done";
      return;
    }
    this.release(seq);
    this.pump();
  }

  private reservation(seq: Sequence): number {
    return seq.spec.promptTokens + seq.spec.maxTokens;
  }

  private canAdmit(seq: Sequence): boolean {
    if (this.running.size >= this.limits.maxNumSeqs) return false;
    // A sequence larger than the whole cache still runs alone rather than wait forever.
    if (this.running.size === 0) return true;
    return this.kvReserved + this.reservation(seq) <= this.limits.kvCacheTokens;
  }

  private start(seq: Sequence): void {
    seq.state = "running";
    this.running.add(seq);
    this.kvReserved += this.reservation(seq);
    const now = this.clock.now();
    seq.lastTokenAt = now;
    seq.events.onStart?.(now - seq.enqueuedAt);
    seq.dueAt = now + timeToFirstTokenMs(seq.spec.promptTokens, this.running.size, this.params());
    seq.timer = this.clock.setTimer(() => this.step(seq), seq.dueAt - now);
  }

  private step(seq: Sequence): void {
    if (seq.state !== "running") return;
    const now = this.clock.now();
    seq.generated += 1;
    const gap = now - seq.lastTokenAt;
    seq.lastTokenAt = now;
    seq.events.onToken(seq.generated, gap);
    if (seq.generated >= seq.spec.outputTokens) {
      this.release(seq);
      seq.events.onFinish();
      this.pump();
      return;
    }
    seq.dueAt += interTokenLatencyMs(this.running.size, this.params());
    seq.timer = this.clock.setTimer(() => this.step(seq), seq.dueAt - now);
  }

  private release(seq: Sequence): void {
    seq.state = "done";
    seq.timer = undefined;
    this.running.delete(seq);
    this.kvReserved -= this.reservation(seq);
  }

  private pump(): void {
    for (;;) {
      const head = this.waiting[0];
      if (!head || !this.canAdmit(head)) return;
      this.waiting.shift();
      this.start(head);
    }
  }
}
