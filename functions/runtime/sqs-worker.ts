import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { z } from "zod";
import type { Logger } from "../shared/logger.ts";
import { counter, gauge, histogram, metricsText } from "../shared/metrics.ts";
import { handlerSetVisibility } from "../shared/sqs-records.ts";
import { type QueueGauges, queueGauges } from "./queue-gauges.ts";

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
 * which never hold its reserved batch slots (`queues`, `topLaneReservedSlots`). Lanes are plain SQS
 * queues, so a crash loses no work whichever lane it waits on.
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
 * (a handler's retry delays are registered by `retryLater` in
 * shared/sqs-records.ts, and the heartbeat leaves those messages alone).
 */

// biome-ignore lint/suspicious/noConfusingVoidType: the shape of aws-lambda's own SQSHandler (void | SQSBatchResponse)
export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | undefined | void>;

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
  /** Back-off after a failed receive: initial and maximum delay (doubling, with full jitter). */
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  /**
   * With more than one queue (priority lanes): batch slots kept for the first queue. Batches of the
   * lower lanes hold at most `concurrency - topLaneReservedSlots` slots, so an interactive batch
   * never waits for a slot behind batch lines. Must be below `concurrency`.
   */
  topLaneReservedSlots: 1,
};

const optionsSchema = z
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
  })
  .strict();

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
  region?: string;
  /** How often the queue depth and oldest-message gauges are polled. @default 15000 */
  queueGaugeIntervalMs?: number;
}

/** One queue of a worker (a lane). */
export interface SqsWorkerQueue {
  url: string;
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

export interface SqsWorker {
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

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * @example
 * const worker = createSqsWorker({ name: "cache", sqs, queueUrl, handler, batchSize: 10, concurrency: 4 });
 * await worker.start();
 * process.on("SIGTERM", () => worker.stop());
 */
export function createSqsWorker(options: SqsWorkerOptions): SqsWorker {
  const { name, sqs, handler, logger } = options;
  const tunables = Object.fromEntries(
    Object.keys(SQS_WORKER_DEFAULTS).map((key) => [
      key,
      (options as unknown as Record<string, unknown>)[key] ??
        (SQS_WORKER_DEFAULTS as Record<string, unknown>)[key],
    ]),
  );
  const parsed = optionsSchema.safeParse(
    Object.fromEntries(Object.entries(tunables).filter(([, v]) => v !== undefined)),
  );
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`sqs worker ${name}: option ${String(issue?.path[0])}: ${issue?.message}`);
  }
  const opts = parsed.data;
  const region = options.region ?? "us-east-1";
  const urls = options.queues?.map((q) => q.url) ?? (options.queueUrl ? [options.queueUrl] : []);
  if (urls.length === 0 || (options.queues && options.queueUrl)) {
    throw new Error(`sqs worker ${name}: give either queueUrl or a non-empty queues`);
  }
  if (urls.length > 1 && opts.concurrency <= opts.topLaneReservedSlots) {
    throw new Error(
      `sqs worker ${name}: concurrency (${opts.concurrency}) must exceed topLaneReservedSlots (${opts.topLaneReservedSlots}) when consuming more than one queue, or the lower queues are never served`,
    );
  }
  /** Batch slots the lower lanes may hold at once. */
  const lowerLaneSlots = opts.concurrency - opts.topLaneReservedSlots;
  const lanes: Lane[] = urls.map((url) => ({
    url,
    arn: `arn:aws:sqs:${region}:000000000000:${url.split("/").pop()}`,
    visibility: opts.visibilityTimeoutSeconds ?? 30,
    active: 0,
    gauges: queueGauges({ sqs, queueUrl: url, logger, intervalMs: options.queueGaugeIntervalMs }),
  }));
  const top = lanes[0]!;

  let running = false;
  let healthy = false;
  /** Aborts in-flight receives: only when the drain grace period runs out. */
  let abort = new AbortController();
  /** Cuts back-off and batching-window pauses short: as soon as stop() is called. */
  let stopping = new AbortController();
  const loops: Promise<void>[] = [];
  /** Batches being handled. */
  const active = new Set<Promise<void>>();
  /** Receive loops waiting for a free batch slot. */
  let slotWaiters: Array<() => void> = [];
  const wakeReceivers = () => {
    const waiters = slotWaiters;
    slotWaiters = [];
    for (const wake of waiters) wake();
  };
  /** Batches of the lower lanes in flight, and receives of the lower lanes' loops under way. */
  const lowerActive = () => active.size - top.active;
  let lowerReceiving = 0;
  /** Resolves when `free()` holds (a batch slot this loop may use) or the worker is stopping. */
  const freeSlot = async (free: () => boolean) => {
    while (running && !free()) {
      await new Promise<void>((resolve) => slotWaiters.push(resolve));
    }
  };
  /** Messages received and not yet deleted or released, by receipt handle, with their lane. */
  const inFlight = new Map<string, { message: Message; lane: Lane }>();
  const stats: SqsWorkerStats = {
    batches: 0,
    received: 0,
    succeeded: 0,
    failed: 0,
    released: 0,
    receiveErrors: 0,
    inFlight: 0,
  };

  function track(lane: Lane, messages: Message[], add: boolean) {
    for (const m of messages) {
      if (add) inFlight.set(m.ReceiptHandle!, { message: m, lane });
      else inFlight.delete(m.ReceiptHandle!);
    }
    stats.inFlight = inFlight.size;
    metrics.inFlight.set({ function: name }, inFlight.size);
  }

  async function receive(lane: Lane, max: number, waitSeconds: number): Promise<Message[]> {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: lane.url,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: waitSeconds,
        VisibilityTimeout: lane.visibility,
        MessageSystemAttributeNames: ["All"],
        MessageAttributeNames: ["All"],
      }),
      { abortSignal: abort.signal },
    );
    const messages = out.Messages ?? [];
    const now = Date.now();
    for (const m of messages) {
      const sent = Number(m.Attributes?.SentTimestamp);
      if (m.Attributes?.ApproximateReceiveCount === "1" && Number.isFinite(sent)) {
        metrics.queueWait.observe({ function: name }, Math.max(0, now - sent) / 1000);
      }
    }
    stats.received += messages.length;
    lane.gauges.observe(messages);
    track(lane, messages, true);
    return messages;
  }

  /** One batch off `lane`: a receive waiting up to `waitSeconds`, then up to the batching window for the rest. */
  async function collect(lane: Lane, waitSeconds: number): Promise<Message[]> {
    const batch = await receive(lane, opts.batchSize, waitSeconds);
    if (batch.length === 0 || opts.maxBatchingWindowMs === 0 || batch.length >= opts.batchSize) return batch;
    if (opts.maxBatchingWindowMs < 1000) {
      // Below a second (SQS long polls in whole seconds): wait out the window, then take what
      // arrived with one receive. Polling every few milliseconds instead cost more receives than
      // the messages it gathered.
      await sleep(opts.maxBatchingWindowMs, stopping.signal);
      if (!running) return batch;
      try {
        batch.push(...(await receive(lane, opts.batchSize - batch.length, 0)));
      } catch (error) {
        // What was gathered so far is handled; the next loop turn meets the error again.
        logger?.warn({ err: error }, "receive failed while gathering a batch");
      }
      return batch;
    }
    const until = Date.now() + opts.maxBatchingWindowMs;
    while (running && batch.length < opts.batchSize) {
      const left = until - Date.now();
      if (left <= 0) break;
      let more: Message[];
      try {
        more = await receive(lane, opts.batchSize - batch.length, left >= 1000 ? 1 : 0);
      } catch (error) {
        // What was gathered so far is handled; the next loop turn meets the error again.
        logger?.warn({ err: error }, "receive failed while gathering a batch");
        break;
      }
      batch.push(...more);
      if (more.length === 0 && left < 1000) await sleep(Math.min(left, 10), stopping.signal);
    }
    return batch;
  }

  async function changeVisibility(lane: Lane, messages: Message[], seconds: number): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      const chunk = messages.slice(i, i + 10);
      await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: lane.url,
          Entries: chunk.map((m, n) => ({
            Id: String(n),
            ReceiptHandle: m.ReceiptHandle!,
            VisibilityTimeout: seconds,
          })),
        }),
      );
    }
  }

  async function remove(lane: Lane, messages: Message[]): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      const chunk = messages.slice(i, i + 10);
      const out = await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: lane.url,
          Entries: chunk.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
      if (out.Failed?.length) {
        logger?.warn({ failed: out.Failed }, "some messages could not be deleted; they will be redelivered");
      }
    }
  }

  /**
   * Which messages to delete after the handler (Lambda's rules): a thrown error
   * or a malformed response fails the whole batch; otherwise every message not
   * named in `batchItemFailures` succeeded.
   */
  function succeededOf(messages: Message[], response: unknown): Message[] {
    if (response === undefined || response === null) return messages;
    const failures = (response as SQSBatchResponse).batchItemFailures;
    if (!Array.isArray(failures)) throw new Error("handler response has no batchItemFailures array");
    const ids = new Set(messages.map((m) => m.MessageId));
    const failed = new Set<string>();
    for (const failure of failures) {
      const id = failure?.itemIdentifier;
      if (typeof id !== "string" || !ids.has(id)) {
        throw new Error(`handler reported an unknown itemIdentifier ${JSON.stringify(id)}`);
      }
      failed.add(id);
    }
    return messages.filter((m) => !failed.has(m.MessageId!));
  }

  async function runBatch(lane: Lane, messages: Message[]): Promise<void> {
    stats.batches += 1;
    const started = Date.now();
    // Heartbeat: a batch that runs past half the visibility timeout is extended, except the
    // messages whose visibility the handler set itself (a retry delay, via retryLater).
    const pending = new Set(messages);
    const beat = setInterval(
      () => {
        const extend = [...pending].filter((m) => !handlerSetVisibility.has(m.ReceiptHandle!));
        if (extend.length === 0) return;
        changeVisibility(lane, extend, lane.visibility).catch((error) =>
          logger?.warn({ err: error }, "visibility heartbeat failed"),
        );
      },
      Math.max(1, Math.floor(lane.visibility / 2)) * 1000,
    );
    let ok: Message[] = [];
    try {
      const response = await handler(
        toEvent(messages, lane.arn, region),
        lambdaContext(name, lane.visibility),
      );
      ok = succeededOf(messages, response);
    } catch (error) {
      logger?.error({ err: error, messages: messages.length }, "handler failed the whole batch");
      ok = [];
    } finally {
      clearInterval(beat);
      metrics.handlerSeconds.observe({ function: name }, (Date.now() - started) / 1000);
    }
    for (const m of messages) {
      pending.delete(m);
      handlerSetVisibility.delete(m.ReceiptHandle!);
    }
    try {
      if (ok.length) await remove(lane, ok);
    } catch (error) {
      logger?.warn({ err: error }, "delete failed; the messages will be redelivered");
    }
    const failed = messages.length - ok.length;
    stats.succeeded += ok.length;
    stats.failed += failed;
    metrics.messages.inc({ function: name, outcome: "success" }, ok.length);
    if (failed) metrics.messages.inc({ function: name, outcome: "failed" }, failed);
    track(lane, messages, false);
  }

  /** Hands a batch to the handler without waiting for it; false when the worker is stopping. */
  async function dispatch(lane: Lane, batch: Message[]): Promise<boolean> {
    if (batch.length === 0) return true;
    if (!running) {
      await release(batch.map((message) => ({ message, lane })));
      return false;
    }
    lane.active += 1;
    const handled: Promise<void> = runBatch(lane, batch).finally(() => {
      lane.active -= 1;
      active.delete(handled);
      wakeReceivers();
    });
    active.add(handled);
    return true;
  }

  /**
   * One receive loop: wait for a batch slot `free()` allows, `take()` a batch and hand it to the
   * handler without waiting for it, receive the next while slots are free (the shape of Lambda's
   * event source mapping pollers, and of sqs-consumer with its concurrency).
   */
  async function loop(free: () => boolean, take: () => Promise<Lane | undefined>): Promise<void> {
    let failures = 0;
    while (running) {
      await freeSlot(free);
      if (!running) break;
      try {
        await take();
        healthy = true;
        failures = 0;
      } catch (error) {
        if (!running) break;
        healthy = false;
        failures += 1;
        stats.receiveErrors += 1;
        metrics.receiveErrors.inc({ function: name });
        const ceiling = Math.min(opts.backoffMaxMs, opts.backoffInitialMs * 2 ** (failures - 1));
        const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        logger?.warn({ err: error, retry_in_ms: delay }, "receive failed; backing off");
        await sleep(delay, stopping.signal);
      }
    }
  }

  /** The top lane's loop: long polls on the first queue whenever any slot is free. */
  async function takeTop(): Promise<Lane | undefined> {
    const batch = await collect(top, opts.waitTimeSeconds);
    return (await dispatch(top, batch)) && batch.length ? top : undefined;
  }

  /**
   * The lower lanes' loop, while one of their slots is free: a zero-wait receive on each queue in
   * priority order (the first queue too, so an interactive backlog is taken before batch lines),
   * and a long poll on the last; the first that returns messages is the batch. Its receive counts
   * against the lower lanes' slots while it runs (so they never hold more than theirs), not against
   * the first queue's: a long poll sitting on an idle batch queue takes no slot from interactive work.
   * Idle, with two queues, that is 3 receives per `waitTimeSeconds` (this loop's zero-wait receive
   * on the first queue and long poll on the second, the top loop's long poll): 0.15 a second
   * with the default 20 s, against 0.05 for one queue.
   */
  async function takeLower(): Promise<Lane | undefined> {
    lowerReceiving += 1;
    try {
      for (const lane of lanes) {
        const last = lane === lanes[lanes.length - 1];
        const batch = await collect(lane, last ? opts.waitTimeSeconds : 0);
        if (batch.length) return (await dispatch(lane, batch)) ? lane : undefined;
        if (!running) return undefined;
      }
      return undefined;
    } finally {
      lowerReceiving -= 1;
    }
  }

  async function release(messages: Array<{ message: Message; lane: Lane }>): Promise<void> {
    for (const lane of lanes) {
      const own = messages.filter((m) => m.lane === lane).map((m) => m.message);
      if (own.length === 0) continue;
      try {
        await changeVisibility(lane, own, 0);
        stats.released += own.length;
        metrics.messages.inc({ function: name, outcome: "released" }, own.length);
      } catch (error) {
        logger?.warn(
          { err: error },
          "could not release messages; they return after their visibility timeout",
        );
      }
      track(lane, own, false);
    }
  }

  /** Reads each queue's ARN (each record's eventSourceARN) and visibility timeout (the default). */
  async function describeLanes(): Promise<void> {
    for (const lane of lanes) {
      const attrs = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: lane.url,
          AttributeNames: ["VisibilityTimeout", "QueueArn"],
        }),
      );
      if (opts.visibilityTimeoutSeconds === undefined)
        lane.visibility = Number(attrs.Attributes?.VisibilityTimeout ?? 30);
      if (attrs.Attributes?.QueueArn) lane.arn = attrs.Attributes.QueueArn;
    }
  }

  return {
    name,
    async start() {
      if (running) return;
      await describeLanes();
      running = true;
      healthy = true;
      abort = new AbortController();
      stopping = new AbortController();
      for (let i = 0; i < opts.receivers; i++) {
        loops.push(loop(() => active.size < opts.concurrency, takeTop));
        if (lanes.length > 1) {
          loops.push(
            loop(
              () => active.size < opts.concurrency && lowerActive() + lowerReceiving < lowerLaneSlots,
              takeLower,
            ),
          );
        }
      }
      for (const lane of lanes) lane.gauges.start();
      logger?.info(
        { queues: urls, ...opts, visibility: lanes.map((lane) => lane.visibility) },
        "worker started",
      );
    },
    async stop(stopOptions = {}) {
      if (!running) return;
      running = false;
      for (const lane of lanes) lane.gauges.stop();
      if (stopOptions.abortReceives) abort.abort();
      // Receives in flight are not aborted: SQS may already have handed them messages, which an
      // aborted call would leave invisible for a whole visibility timeout. They end within the
      // long-poll wait, and their messages are released at once (dispatch()); only when the grace
      // period runs out are they cut.
      stopping.abort();
      wakeReceivers();
      const all = Promise.allSettled(loops.splice(0)).then(() => Promise.allSettled([...active]));
      // The grace timer is cancelled once the drain finishes, so a stopped worker holds no timer
      // and the process exits at once (it used to linger for the whole grace period).
      const grace = new AbortController();
      const timedOut = await Promise.race([
        all.then(() => false),
        sleep(opts.drainGraceMs, grace.signal).then(() => !grace.signal.aborted),
      ]);
      grace.abort();
      abort.abort();
      if (timedOut) {
        const left = [...inFlight.values()];
        logger?.warn({ messages: left.length }, "drain grace period over; releasing in-flight messages");
        await release(left);
      }
      healthy = false;
      logger?.info({ ...stats }, "worker stopped");
    },
    healthy: () => running && healthy,
    stats: () => ({ ...stats }),
  };
}

/** One queue the worker consumes, with what it knows of it. */
interface Lane {
  url: string;
  /** Each record's eventSourceARN. */
  arn: string;
  /** Visibility timeout to receive with and to extend by. */
  visibility: number;
  /** Batches of this lane being handled. */
  active: number;
  gauges: QueueGauges;
}

function toEvent(messages: Message[], queueArn: string, region: string): SQSEvent {
  return {
    Records: messages.map(
      (m): SQSRecord => ({
        messageId: m.MessageId!,
        receiptHandle: m.ReceiptHandle!,
        body: m.Body ?? "",
        attributes: {
          ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? "1",
          SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
          SenderId: m.Attributes?.SenderId ?? "",
          ApproximateFirstReceiveTimestamp:
            m.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
          ...(m.Attributes?.MessageGroupId ? { MessageGroupId: m.Attributes.MessageGroupId } : {}),
          ...(m.Attributes?.MessageDeduplicationId
            ? { MessageDeduplicationId: m.Attributes.MessageDeduplicationId }
            : {}),
        },
        messageAttributes: Object.fromEntries(
          Object.entries(m.MessageAttributes ?? {}).map(([key, value]) => [
            key,
            {
              dataType: value.DataType ?? "String",
              ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
            },
          ]),
        ),
        md5OfBody: m.MD5OfBody ?? "",
        eventSource: "aws:sqs",
        eventSourceARN: queueArn,
        awsRegion: region,
      }),
    ),
  };
}

function lambdaContext(name: string, visibilitySeconds: number): Context {
  const deadline = Date.now() + visibilitySeconds * 1000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${name}`,
    memoryLimitInMB: "0",
    awsRequestId: randomUUID(),
    logGroupName: `/deepqueue/${name}`,
    logStreamName: name,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export interface WorkerEndpoints {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * `/healthz` (200 when `health()` resolves true, else 503) and `/metrics`
 * (Prometheus text) on a small port: what the worker Deployment's probes and
 * Prometheus scrape.
 *
 * @example const endpoints = await serveWorkerEndpoints({ port: 9090, health: async () => worker.healthy() });
 */
export async function serveWorkerEndpoints(options: {
  port: number;
  host?: string;
  health: () => Promise<boolean>;
}): Promise<WorkerEndpoints> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      options
        .health()
        .catch(() => false)
        .then((ok) => {
          res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
          res.end(JSON.stringify({ status: ok ? "ok" : "unavailable" }));
        });
      return;
    }
    if (req.method === "GET" && path === "/metrics") {
      metricsText().then(({ contentType, body }) => {
        res.writeHead(200, { "content-type": contentType });
        res.end(body);
      });
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: "not_found", message: "not found" } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
