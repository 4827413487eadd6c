import { GetQueueAttributesCommand, type Message, type SQSClient } from "@aws-sdk/client-sqs";
import type { Logger } from "../shared/logger.ts";
import { gauge } from "../shared/metrics.ts";
import { dlqName } from "../shared/names.ts";

export const QUEUE_GAUGE_DEFAULTS = {
  /** How often the queue's attributes are read: a timer, never per request. */
  intervalMs: 15_000,
};

const metrics = {
  messages: gauge(
    "deepqueue_queue_messages",
    "Messages on a queue by state (visible, in_flight, delayed), from SQS GetQueueAttributes at the last poll",
    ["queue", "state"],
  ),
  oldestAge: gauge(
    "deepqueue_queue_oldest_message_age_seconds",
    "Age (now - SentTimestamp) of the oldest message received since the previous poll; while messages are visible and none is received, the time since the last receive",
    ["queue"],
  ),
};

export interface QueueGaugesOptions {
  sqs: SQSClient;
  /** The queue the worker consumes; its dead-letter queue (`<url>-dlq`) is read too. */
  queueUrl: string;
  logger?: Logger;
  /** @default QUEUE_GAUGE_DEFAULTS.intervalMs */
  intervalMs?: number | undefined;
  /** For tests. @default Date.now */
  now?: () => number;
}

export interface QueueGauges {
  /** Notes the messages a receive returned (their SentTimestamp); cheap, no I/O. */
  observe(messages: readonly Message[]): void;
  /** Reads the attributes now and every `intervalMs` after. */
  start(): void;
  stop(): void;
  /** One poll; resolves when the gauges are set (the timer calls this). */
  poll(): Promise<void>;
}

const ATTRIBUTES = {
  visible: "ApproximateNumberOfMessages",
  in_flight: "ApproximateNumberOfMessagesNotVisible",
  delayed: "ApproximateNumberOfMessagesDelayed",
} as const;

/** The queue's name, the gauges' `queue` label: the last segment of its URL. */
function nameOf(url: string): string {
  return url.split("/").pop() ?? url;
}

/**
 * Gauges of a worker's queue and its dead-letter queue, for alerts and the
 * dashboard: message counts by state from GetQueueAttributes, polled on a
 * timer (two calls per interval, whatever the traffic), and the age of the
 * oldest message.
 *
 * SQS has no "age of the oldest message" attribute (CloudWatch's
 * ApproximateAgeOfOldestMessage is not readable from here), and peeking would
 * count as a receive towards maxReceiveCount. So the age is what the worker
 * sees: the largest `now - SentTimestamp` of the messages it received since
 * the previous poll. A queue that holds visible messages while the worker
 * receives none is stalled: then the gauge is the time since the last
 * receive, and keeps growing. With nothing visible and nothing received it is 0.
 * Every replica of a worker reports the same queue: aggregate with `max`.
 *
 * @example
 * const gauges = queueGauges({ sqs, queueUrl });
 * gauges.start();
 * gauges.observe(receivedMessages);
 */
export function queueGauges(options: QueueGaugesOptions): QueueGauges {
  return new SqsQueueGauges(options);
}

type Counts = Record<keyof typeof ATTRIBUTES, number>;

/** The gauges of one queue and its DLQ (see queueGauges). */
export class SqsQueueGauges implements QueueGauges {
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;
  readonly #dlqUrl: string;
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  readonly #intervalMs: number;
  /** Oldest age among the messages received since the previous poll. */
  #windowOldestAgeMs: number | undefined;
  #lastReceiveAt: number;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;

  constructor(options: QueueGaugesOptions) {
    this.#sqs = options.sqs;
    this.#queueUrl = options.queueUrl;
    this.#dlqUrl = dlqName(options.queueUrl);
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#intervalMs = options.intervalMs ?? QUEUE_GAUGE_DEFAULTS.intervalMs;
    this.#lastReceiveAt = this.#now();
  }

  observe(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    const t = this.#now();
    this.#lastReceiveAt = t;
    for (const m of messages) {
      const sent = Number(m.Attributes?.SentTimestamp);
      if (!Number.isFinite(sent)) continue;
      this.#windowOldestAgeMs = Math.max(this.#windowOldestAgeMs ?? 0, t - sent);
    }
  }

  poll(): Promise<void> {
    // One poll at a time: a slow SQS must not pile calls up behind the timer.
    this.#polling ??= this.#pollOnce().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  start(): void {
    if (this.#timer) return;
    this.#lastReceiveAt = this.#now();
    void this.poll().catch(() => {});
    this.#timer = setInterval(() => void this.poll().catch(() => {}), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #counts(url: string): Promise<Counts> {
    const out = await this.#sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: Object.values(ATTRIBUTES) }),
    );
    const read = (name: (typeof ATTRIBUTES)[keyof typeof ATTRIBUTES]) => Number(out.Attributes?.[name] ?? 0);
    return {
      visible: read(ATTRIBUTES.visible),
      in_flight: read(ATTRIBUTES.in_flight),
      delayed: read(ATTRIBUTES.delayed),
    };
  }

  async #pollOnce(): Promise<void> {
    const [main, dlq] = await Promise.allSettled([this.#counts(this.#queueUrl), this.#counts(this.#dlqUrl)]);
    this.#setCounts(this.#queueUrl, main);
    this.#setCounts(this.#dlqUrl, dlq);
    const visible = main.status === "fulfilled" ? main.value.visible : 0;
    const age =
      this.#windowOldestAgeMs !== undefined
        ? this.#windowOldestAgeMs
        : visible > 0
          ? Math.max(0, this.#now() - this.#lastReceiveAt)
          : 0;
    metrics.oldestAge.set({ queue: nameOf(this.#queueUrl) }, age / 1000);
    this.#windowOldestAgeMs = undefined;
  }

  #setCounts(url: string, result: PromiseSettledResult<Counts>): void {
    const queue = nameOf(url);
    if (result.status === "rejected") {
      // Stale numbers would mislead: drop them until the next successful read.
      for (const state of Object.keys(ATTRIBUTES)) metrics.messages.remove({ queue, state });
      this.#logger?.warn({ err: result.reason, queue }, "queue gauges: GetQueueAttributes failed");
      return;
    }
    for (const [state, value] of Object.entries(result.value)) metrics.messages.set({ queue, state }, value);
  }
}
