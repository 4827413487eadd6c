import { setTimeout as sleep } from "node:timers/promises";
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { ExponentialBackoff, halfJitterGenerator, type IBackoff } from "cockatiel";
import { z } from "zod";
import { OptionsError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { counter, gauge, histogram } from "../shared/metrics.ts";
import { VisibilityClaims, visibilityClaims } from "../shared/visibility-claims.ts";
import { lambdaContext, messagesToDelete, type SqsHandler, sqsEvent } from "./lambda-adapter.ts";
import { LaneSlots, lowerLaneReceives } from "./lanes.ts";
import { type QueueGauges, queueGauges } from "./queue-gauges.ts";

export type { SqsHandler } from "./lambda-adapter.ts";

/**
 * Runs a Lambda-shaped SQS handler (`SQSEvent` → `SQSBatchResponse`) off a
 * queue the way Lambda's event source mapping does
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html):
 * long polling, batches of up to `batchSize` gathered for at most
 * `maxBatchingWindowMs`, partial batch responses
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html),
 * plus what Lambda cannot do off AWS: visibility heartbeats while a batch
 * runs, back-off on connection errors, `concurrency` batches in flight off one receive loop, a
 * `stop()` that drains, and priority lanes: several queues, the first served before the others,
 * which never hold its reserved batch slots (`queues`, `topLaneReservedSlots`; lanes.ts). Lanes are
 * plain SQS queues, so a crash loses no work whichever lane it waits on. The Lambda event, context
 * and partial batch response are lambda-adapter.ts; /healthz and /metrics worker-endpoints.ts.
 *
 * Why not `sqs-consumer` (v15)? Its loop is the model here (receive → handle →
 * schedule next, an AbortController, back-off), but it hands each
 * ReceiveMessage result over alone (no batching window: at low and medium load
 * the batcher's micro-batches would be one or two requests), it reads a
 * handler's return value as "messages to delete" (a Lambda `SQSBatchResponse`
 * needs an adapter either way), its heartbeat keeps extending messages the
 * handler already scheduled for a retry, and its `stop()` waits for in-flight
 * work (checked once a second) but cannot release it (ChangeMessageVisibility
 * 0) when the grace period ends. Those four are the whole of this file
 * (a handler's retry delays are claimed by `retryLater` in shared/retries.ts, in
 * the worker's own VisibilityClaims, and the heartbeat leaves those messages alone).
 */

export const SQS_WORKER_DEFAULTS = {
  /** Messages per handler invocation (SQS's ReceiveMessage maximum; Lambda's default for standard queues). */
  batchSize: 10,
  /** How long to keep gathering a batch after its first message (Lambda's MaximumBatchingWindowInSeconds, in ms). */
  maxBatchingWindowMs: 0,
  /** Long-poll wait (SQS maximum, as Lambda uses). Tests use 1. */
  waitTimeSeconds: 20,
  /** Batches handled at once (handler invocations in flight). */
  concurrency: 1,
  /**
   * Receive loops. One is enough for hundreds of messages a second: it receives again as soon as a
   * batch is handed over (while fewer than `concurrency` run), so what arrives meanwhile makes the
   * next batch fuller — more loops would split arrivals into smaller batches, each costing its own
   * receive, delete and downstream calls.
   */
  receivers: 1,
  /** Visibility timeout to receive with; undefined = the queue's own (read at start). */
  visibilityTimeoutSeconds: undefined as number | undefined,
  /** How long stop() waits for in-flight batches before releasing their messages. */
  drainGraceMs: 25_000,
  /** Back-off after a failed receive: initial and maximum delay (doubling, with half jitter). */
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  /**
   * With more than one queue (priority lanes): batch slots kept for the first queue. Batches of the
   * lower lanes hold at most `concurrency - topLaneReservedSlots` slots, so an interactive batch
   * never waits for a slot behind batch lines. Must be below `concurrency`.
   */
  topLaneReservedSlots: 1,
  /**
   * With priority lanes: batch slots the lower lanes may hold while the top lane has work (a batch
   * of it runs, or started within `topLaneQuietMs`). Alone, they use every unreserved slot.
   */
  busyLowerLaneSlots: 1,
  /** How long after its last batch the top lane still counts as busy. */
  topLaneQuietMs: 5_000,
};

type WorkerTunables = Omit<typeof SQS_WORKER_DEFAULTS, "visibilityTimeoutSeconds"> & {
  visibilityTimeoutSeconds?: number | undefined;
};

const tunablesSchema = z
  .object({
    batchSize: z.number().int().min(1).max(10),
    maxBatchingWindowMs: z.number().int().min(0).max(300_000),
    waitTimeSeconds: z.number().int().min(0).max(20),
    concurrency: z.number().int().min(1).max(100),
    receivers: z.number().int().min(1).max(100),
    visibilityTimeoutSeconds: z.number().int().min(1).max(43_200).optional(),
    drainGraceMs: z.number().int().min(0),
    backoffInitialMs: z.number().int().min(1),
    backoffMaxMs: z.number().int().min(1),
    topLaneReservedSlots: z.number().int().min(0),
    busyLowerLaneSlots: z.number().int().min(1),
    topLaneQuietMs: z.number().int().min(0),
  })
  .strict();

/** One queue of a worker (a lane). */
export interface SqsWorkerQueue {
  url: string;
}

export interface SqsWorkerOptions extends Partial<typeof SQS_WORKER_DEFAULTS> {
  /** The function's name: logs, metrics labels, Lambda context. */
  name: string;
  sqs: SQSClient;
  /** The queue to consume. Give this or `queues`. */
  queueUrl?: string;
  /**
   * Queues in priority order, highest first (priority lanes): each receive takes from the highest
   * queue that has messages; lower queues are served only when the ones above are empty, and hold
   * at most `concurrency - topLaneReservedSlots` batch slots.
   */
  queues?: readonly SqsWorkerQueue[];
  handler: SqsHandler;
  logger?: Logger;
  /** @default "us-east-1" */
  region?: string;
  /** How often the queue depth and oldest-message gauges are polled. @default QUEUE_GAUGE_DEFAULTS.intervalMs */
  queueGaugeIntervalMs?: number;
  /**
   * A message that must not wait out the batching window: when the first receive holds one, the
   * batch goes to the handler at once (a streamed request: its caller waits for the first token).
   */
  skipsWindow?: (message: Message) => boolean;
}

export interface SqsWorkerStats {
  batches: number;
  received: number;
  succeeded: number;
  failed: number;
  released: number;
  receiveErrors: number;
  inFlight: number;
}

/** What runs a handler off queues: started once, stopped with a drain. */
export interface QueueWorker {
  readonly name: string;
  start(): Promise<void>;
  /**
   * Stops receiving, waits up to `drainGraceMs` for in-flight batches, then releases what is left.
   * Receives in flight are let finish (at most the long-poll wait) and what they got is released;
   * `abortReceives` cuts them at once instead — faster, but SQS may already have handed them
   * messages, which then stay invisible for one visibility timeout (delayed, never lost).
   */
  stop(options?: { abortReceives?: boolean }): Promise<void>;
  /** True while running and the last receive did not fail. */
  healthy(): boolean;
  stats(): SqsWorkerStats;
}

const metrics = {
  messages: counter("deepqueue_worker_messages_total", "SQS messages handled, by outcome", [
    "function",
    "outcome",
  ]),
  receiveErrors: counter("deepqueue_worker_receive_errors_total", "Failed ReceiveMessage calls", [
    "function",
  ]),
  inFlight: gauge("deepqueue_worker_in_flight_messages", "Messages being handled", ["function"]),
  handlerSeconds: histogram("deepqueue_worker_handler_seconds", "Handler duration per batch", ["function"]),
  queueWait: histogram(
    "deepqueue_queue_wait_seconds",
    "Time from SendMessage to the first receive of a message",
    ["function"],
  ),
};

/** One queue the worker consumes, with what it knows of it. */
interface Lane {
  /** Priority: 0 is the top lane. */
  index: number;
  url: string;
  /** Each record's eventSourceARN. */
  arn: string;
  /** Visibility timeout to receive with and to extend by. */
  visibility: number;
  gauges: QueueGauges;
}

/** A message received and not yet deleted or released, with its lane. */
interface Held {
  message: Message;
  lane: Lane;
}

/**
 * The worker's tunables, defaulted once from SQS_WORKER_DEFAULTS and checked by a strict schema;
 * throws OptionsError naming the option.
 */
function workerTunables(name: string, options: Partial<typeof SQS_WORKER_DEFAULTS>): WorkerTunables {
  const given = Object.fromEntries(
    Object.keys(SQS_WORKER_DEFAULTS).flatMap((key) => {
      const value =
        (options as Record<string, unknown>)[key] ?? (SQS_WORKER_DEFAULTS as Record<string, unknown>)[key];
      return value === undefined ? [] : [[key, value]];
    }),
  );
  const parsed = tunablesSchema.safeParse(given);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OptionsError(`sqs worker ${name}`, [String(issue?.path[0])], issue?.message ?? "invalid");
  }
  return parsed.data;
}

/**
 * The back-off after failed receives: doubling from `backoffInitialMs` up to `backoffMaxMs`, each
 * delay drawn between half the ceiling and the ceiling (cockatiel's half jitter).
 *
 * @example let step = receiveBackoff(opts).next(undefined); step.duration; step = step.next(undefined);
 */
export function receiveBackoff(options: { backoffInitialMs: number; backoffMaxMs: number }) {
  return new ExponentialBackoff({
    initialDelay: options.backoffInitialMs,
    maxDelay: options.backoffMaxMs,
    generator: halfJitterGenerator,
  });
}

/**
 * @example
 * const worker = new SqsWorker({ name: "cache", sqs, queueUrl, handler, batchSize: 10, concurrency: 4 });
 * await worker.start();
 * process.on("SIGTERM", () => worker.stop());
 */
export class SqsWorker implements QueueWorker {
  readonly name: string;
  readonly #sqs: SQSClient;
  readonly #handler: SqsHandler;
  readonly #logger: Logger | undefined;
  readonly #region: string;
  readonly #opts: WorkerTunables;
  readonly #skipsWindow: ((message: Message) => boolean) | undefined;
  readonly #lanes: Lane[];
  readonly #slots: LaneSlots;
  /** Receipt handles whose visibility the handler set itself (retryLater): no heartbeat for them. */
  readonly #claims = new VisibilityClaims();
  readonly #backoff: ExponentialBackoff<unknown>;
  #running = false;
  #healthy = false;
  /** Aborts in-flight receives: only when the drain grace period runs out. */
  #abort = new AbortController();
  /** Cuts back-off and batching-window pauses short: as soon as stop() is called. */
  #stopping = new AbortController();
  readonly #loops: Promise<void>[] = [];
  /** Batches being handled. */
  readonly #active = new Set<Promise<void>>();
  /** Receive loops waiting for a free batch slot. */
  #slotWaiters: Array<() => void> = [];
  /** Messages received and not yet deleted or released, by receipt handle. */
  readonly #inFlight = new Map<string, Held>();
  readonly #stats: SqsWorkerStats = {
    batches: 0,
    received: 0,
    succeeded: 0,
    failed: 0,
    released: 0,
    receiveErrors: 0,
    inFlight: 0,
  };

  constructor(options: SqsWorkerOptions) {
    this.name = options.name;
    this.#sqs = options.sqs;
    this.#handler = options.handler;
    this.#logger = options.logger;
    this.#region = options.region ?? "us-east-1";
    this.#opts = workerTunables(options.name, options);
    this.#skipsWindow = options.skipsWindow;
    const urls = options.queues?.map((q) => q.url) ?? (options.queueUrl ? [options.queueUrl] : []);
    if (urls.length === 0 || (options.queues && options.queueUrl)) {
      throw new OptionsError(
        `sqs worker ${this.name}`,
        ["queueUrl", "queues"],
        "give one: a queue URL or a non-empty list",
      );
    }
    if (urls.length > 1 && this.#opts.concurrency <= this.#opts.topLaneReservedSlots) {
      throw new OptionsError(
        `sqs worker ${this.name}`,
        ["concurrency", "topLaneReservedSlots"],
        `concurrency (${this.#opts.concurrency}) must exceed topLaneReservedSlots (${this.#opts.topLaneReservedSlots}) when consuming more than one queue, or the lower queues are never served`,
      );
    }
    this.#lanes = urls.map((url, index) => ({
      index,
      url,
      arn: `arn:aws:sqs:${this.#region}:000000000000:${url.split("/").pop()}`,
      visibility: this.#opts.visibilityTimeoutSeconds ?? 30,
      gauges: queueGauges({
        sqs: this.#sqs,
        queueUrl: url,
        logger: this.#logger,
        intervalMs: options.queueGaugeIntervalMs,
      }),
    }));
    this.#slots = new LaneSlots({
      concurrency: this.#opts.concurrency,
      reservedSlots: this.#opts.topLaneReservedSlots,
      busyLowerSlots: this.#opts.busyLowerLaneSlots,
      topQuietMs: this.#opts.topLaneQuietMs,
    });
    this.#backoff = receiveBackoff(this.#opts);
  }

  async start(): Promise<void> {
    if (this.#running) return;
    await this.#describeLanes();
    this.#running = true;
    this.#healthy = true;
    this.#abort = new AbortController();
    this.#stopping = new AbortController();
    for (let i = 0; i < this.#opts.receivers; i++) {
      this.#loops.push(
        this.#loop(
          () => this.#slots.topMayReceive(),
          () => this.#takeTop(),
        ),
      );
      if (this.#lanes.length > 1) {
        this.#loops.push(
          this.#loop(
            () => this.#slots.lowerMayReceive(),
            () => this.#takeLower(),
          ),
        );
      }
    }
    for (const lane of this.#lanes) lane.gauges.start();
    this.#logger?.info(
      {
        queues: this.#lanes.map((lane) => lane.url),
        ...this.#opts,
        visibility: this.#lanes.map((l) => l.visibility),
      },
      "worker started",
    );
  }

  async stop(options: { abortReceives?: boolean } = {}): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    for (const lane of this.#lanes) lane.gauges.stop();
    if (options.abortReceives) this.#abort.abort();
    // Receives in flight are not aborted: SQS may already have handed them messages, which an
    // aborted call would leave invisible for a whole visibility timeout. They end within the
    // long-poll wait, and their messages are released at once (#dispatch); only when the grace
    // period runs out are they cut.
    this.#stopping.abort();
    this.#wakeReceivers();
    const all = Promise.allSettled(this.#loops.splice(0)).then(() => Promise.allSettled([...this.#active]));
    // The grace timer is cancelled once the drain finishes, so a stopped worker holds no timer
    // and the process exits at once (it used to linger for the whole grace period).
    const grace = new AbortController();
    const timedOut = await Promise.race([
      all.then(() => false),
      sleep(this.#opts.drainGraceMs, true, { signal: grace.signal }).catch(() => false),
    ]);
    grace.abort();
    this.#abort.abort();
    if (timedOut) {
      const left = [...this.#inFlight.values()];
      this.#logger?.warn({ messages: left.length }, "drain grace period over; releasing in-flight messages");
      await this.#release(left);
    }
    this.#healthy = false;
    this.#logger?.info({ ...this.#stats }, "worker stopped");
  }

  healthy(): boolean {
    return this.#running && this.#healthy;
  }

  stats(): SqsWorkerStats {
    return { ...this.#stats };
  }

  /** Reads each queue's ARN (each record's eventSourceARN) and visibility timeout (the default). */
  async #describeLanes(): Promise<void> {
    for (const lane of this.#lanes) {
      const attrs = await this.#sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: lane.url,
          AttributeNames: ["VisibilityTimeout", "QueueArn"],
        }),
      );
      if (this.#opts.visibilityTimeoutSeconds === undefined)
        lane.visibility = Number(attrs.Attributes?.VisibilityTimeout ?? 30);
      if (attrs.Attributes?.QueueArn) lane.arn = attrs.Attributes.QueueArn;
    }
  }

  #wakeReceivers(): void {
    const waiters = this.#slotWaiters;
    this.#slotWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves when `free()` holds (a batch slot this loop may use) or the worker is stopping. */
  async #freeSlot(free: () => boolean): Promise<void> {
    while (this.#running && !free()) {
      await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
    }
  }

  /**
   * One receive loop: wait for a batch slot `free()` allows, `take()` a batch and hand it to the
   * handler without waiting for it, receive the next while slots are free (the shape of Lambda's
   * event source mapping pollers, and of sqs-consumer with its concurrency).
   */
  async #loop(free: () => boolean, take: () => Promise<void>): Promise<void> {
    let backoff: IBackoff<unknown> | undefined;
    while (this.#running) {
      await this.#freeSlot(free);
      if (!this.#running) break;
      try {
        await take();
        this.#healthy = true;
        backoff = undefined;
      } catch (error) {
        if (!this.#running) break;
        this.#healthy = false;
        this.#stats.receiveErrors += 1;
        metrics.receiveErrors.inc({ function: this.name });
        backoff = backoff ? backoff.next(undefined) : this.#backoff.next();
        this.#logger?.warn({ err: error, retry_in_ms: backoff.duration }, "receive failed; backing off");
        await sleep(backoff.duration, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
      }
    }
  }

  /** The top lane's loop: a long poll on the first queue whenever any slot is free. */
  async #takeTop(): Promise<void> {
    const top = this.#lanes[0]!;
    await this.#dispatch(top, await this.#collect(top, this.#opts.waitTimeSeconds));
  }

  /** The lower lanes' loop, while one of their slots is free: lowerLaneReceives' order. */
  async #takeLower(): Promise<void> {
    this.#slots.lowerReceiving(1);
    try {
      for (const { lane, waitSeconds } of lowerLaneReceives(this.#lanes.length, this.#opts.waitTimeSeconds)) {
        const batch = await this.#collect(this.#lanes[lane]!, waitSeconds);
        if (batch.length) return await this.#dispatch(this.#lanes[lane]!, batch);
        if (!this.#running) return;
      }
    } finally {
      this.#slots.lowerReceiving(-1);
    }
  }

  async #receive(lane: Lane, max: number, waitSeconds: number): Promise<Message[]> {
    const out = await this.#sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: lane.url,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: waitSeconds,
        VisibilityTimeout: lane.visibility,
        MessageSystemAttributeNames: ["All"],
        MessageAttributeNames: ["All"],
      }),
      { abortSignal: this.#abort.signal },
    );
    const messages = out.Messages ?? [];
    const now = Date.now();
    for (const m of messages) {
      const sent = Number(m.Attributes?.SentTimestamp);
      if (m.Attributes?.ApproximateReceiveCount === "1" && Number.isFinite(sent)) {
        metrics.queueWait.observe({ function: this.name }, Math.max(0, now - sent) / 1000);
      }
    }
    this.#stats.received += messages.length;
    lane.gauges.observe(messages);
    this.#track(lane, messages, true);
    return messages;
  }

  /** One batch off `lane`: a receive waiting up to `waitSeconds`, then up to the batching window for the rest. */
  async #collect(lane: Lane, waitSeconds: number): Promise<Message[]> {
    const { batchSize, maxBatchingWindowMs } = this.#opts;
    const batch = await this.#receive(lane, batchSize, waitSeconds);
    if (batch.length === 0 || maxBatchingWindowMs === 0 || batch.length >= batchSize) return batch;
    if (this.#skipsWindow && batch.some(this.#skipsWindow)) return batch;
    try {
      if (maxBatchingWindowMs < 1000) await this.#gatherAfterPause(lane, batch);
      else await this.#gatherWithin(lane, batch, Date.now() + maxBatchingWindowMs);
    } catch (error) {
      // What was gathered so far is handled; the next loop turn meets the error again.
      this.#logger?.warn({ err: error }, "receive failed while gathering a batch");
    }
    return batch;
  }

  /**
   * A window below a second (SQS long polls in whole seconds): wait it out, then take what arrived
   * with one receive. Polling every few milliseconds instead cost more receives than the messages
   * it gathered.
   */
  async #gatherAfterPause(lane: Lane, batch: Message[]): Promise<void> {
    await sleep(this.#opts.maxBatchingWindowMs, undefined, { signal: this.#stopping.signal }).catch(
      () => undefined,
    );
    if (!this.#running) return;
    batch.push(...(await this.#receive(lane, this.#opts.batchSize - batch.length, 0)));
  }

  /** A window of a second or more: one-second long polls until it ends or the batch is full. */
  async #gatherWithin(lane: Lane, batch: Message[], until: number): Promise<void> {
    while (this.#running && batch.length < this.#opts.batchSize) {
      const left = until - Date.now();
      if (left <= 0) break;
      const more = await this.#receive(lane, this.#opts.batchSize - batch.length, left >= 1000 ? 1 : 0);
      batch.push(...more);
      if (more.length === 0 && left < 1000) {
        await sleep(Math.min(left, 10), undefined, { signal: this.#stopping.signal }).catch(() => undefined);
      }
    }
  }

  /** Hands a batch to the handler without waiting for it; released at once when stopping. */
  async #dispatch(lane: Lane, batch: Message[]): Promise<void> {
    if (batch.length === 0) return;
    if (!this.#running) return this.#release(batch.map((message) => ({ message, lane })));
    this.#slots.started(lane.index);
    const handled: Promise<void> = this.#runBatch(lane, batch).finally(() => {
      this.#slots.finished(lane.index);
      this.#active.delete(handled);
      this.#wakeReceivers();
    });
    this.#active.add(handled);
  }

  async #runBatch(lane: Lane, messages: Message[]): Promise<void> {
    this.#stats.batches += 1;
    const started = Date.now();
    const beat = this.#heartbeat(lane, messages);
    let ok: Message[] = [];
    try {
      const response = await visibilityClaims.run(this.#claims, () =>
        this.#handler(sqsEvent(messages, lane.arn, this.#region), lambdaContext(this.name, lane.visibility)),
      );
      ok = messagesToDelete(messages, response);
    } catch (error) {
      this.#logger?.error({ err: error, messages: messages.length }, "handler failed the whole batch");
    } finally {
      clearInterval(beat);
      metrics.handlerSeconds.observe({ function: this.name }, (Date.now() - started) / 1000);
    }
    for (const m of messages) this.#claims.delete(m.ReceiptHandle!);
    try {
      if (ok.length) await this.#remove(lane, ok);
    } catch (error) {
      this.#logger?.warn({ err: error }, "delete failed; the messages will be redelivered");
    }
    const failed = messages.length - ok.length;
    this.#stats.succeeded += ok.length;
    this.#stats.failed += failed;
    metrics.messages.inc({ function: this.name, outcome: "success" }, ok.length);
    if (failed) metrics.messages.inc({ function: this.name, outcome: "failed" }, failed);
    this.#track(lane, messages, false);
  }

  /**
   * Extends a batch that runs past half the visibility timeout, on its own queue, except the
   * messages whose visibility the handler set itself (a retry delay, via retryLater).
   */
  #heartbeat(lane: Lane, messages: Message[]): NodeJS.Timeout {
    return setInterval(
      () => {
        const extend = messages.filter((m) => !this.#claims.has(m.ReceiptHandle!));
        if (extend.length === 0) return;
        this.#changeVisibility(lane, extend, lane.visibility).catch((error) =>
          this.#logger?.warn({ err: error }, "visibility heartbeat failed"),
        );
      },
      Math.max(1, Math.floor(lane.visibility / 2)) * 1000,
    );
  }

  async #changeVisibility(lane: Lane, messages: Message[], seconds: number): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      await this.#sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: lane.url,
          Entries: messages.slice(i, i + 10).map((m, n) => ({
            Id: String(n),
            ReceiptHandle: m.ReceiptHandle!,
            VisibilityTimeout: seconds,
          })),
        }),
      );
    }
  }

  async #remove(lane: Lane, messages: Message[]): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      const out = await this.#sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: lane.url,
          Entries: messages
            .slice(i, i + 10)
            .map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
      if (out.Failed?.length) {
        this.#logger?.warn(
          { failed: out.Failed },
          "some messages could not be deleted; they will be redelivered",
        );
      }
    }
  }

  /** Makes messages visible again at once (ChangeMessageVisibility 0), each on its own queue. */
  async #release(held: Held[]): Promise<void> {
    for (const lane of this.#lanes) {
      const own = held.filter((h) => h.lane === lane).map((h) => h.message);
      if (own.length === 0) continue;
      try {
        await this.#changeVisibility(lane, own, 0);
        this.#stats.released += own.length;
        metrics.messages.inc({ function: this.name, outcome: "released" }, own.length);
      } catch (error) {
        this.#logger?.warn(
          { err: error },
          "could not release messages; they return after their visibility timeout",
        );
      }
      this.#track(lane, own, false);
    }
  }

  #track(lane: Lane, messages: Message[], add: boolean): void {
    for (const message of messages) {
      if (add) this.#inFlight.set(message.ReceiptHandle!, { message, lane });
      else this.#inFlight.delete(message.ReceiptHandle!);
    }
    this.#stats.inFlight = this.#inFlight.size;
    metrics.inFlight.set({ function: this.name }, this.#inFlight.size);
  }
}

/**
 * The one factory: `new SqsWorker(options)`.
 *
 * @example
 * const worker = createSqsWorker({ name: "batcher", sqs, queues: [{ url: inference }, { url: inferenceBatch }], handler, concurrency: 4 });
 */
export function createSqsWorker(options: SqsWorkerOptions): SqsWorker {
  return new SqsWorker(options);
}
