import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
  TagQueueCommand,
} from "@aws-sdk/client-sqs";
import { z } from "zod";
import { type ReplyMessage, replyMessageSchema } from "../../events/index.ts";
import { DeepqueueError, OptionsError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { gauge } from "../shared/metrics.ts";
import { REPLY_HEARTBEAT_TAG, REPLY_QUEUE_DEFAULTS, replyQueueName } from "./config.ts";
import { type ReplyListener, ReplyRouter, type ReplyRouterOptions } from "./reply-router.ts";

const waitingCallers = gauge(
  "deepqueue_reply_waiting_callers",
  "Callers of the OpenAI-compatible routes waiting on this ingest replica for their answer",
);

export interface ReplyQueueOptions extends ReplyRouterOptions {
  sqs: SQSClient;
  prefix: string;
  logger: Logger;
  /** This replica's id in the queue name. @default 12 random hex characters */
  replicaId?: string;
  /** @default REPLY_QUEUE_DEFAULTS.retentionSeconds */
  retentionSeconds?: number;
  /** @default REPLY_QUEUE_DEFAULTS.heartbeatMs */
  heartbeatMs?: number;
  /** @default REPLY_QUEUE_DEFAULTS.waitTimeSeconds */
  waitTimeSeconds?: number;
  /** @default REPLY_QUEUE_DEFAULTS.retryBaseMs */
  retryBaseMs?: number;
  /** Clock (tests). @default Date.now */
  now?: () => number;
}

/** What a route waits through: the queue URL to put on a request, and a subscription by request id. */
export interface ReplyInbox {
  /** The reply queue's URL; the queue is made (and its receive loop started) on the first call. */
  url(): Promise<string>;
  subscribe(requestId: string, listener: ReplyListener): () => void;
  close(): Promise<void>;
}

/** A reply message's body, checked; undefined when it is not one. */
function parseReply(body: string | undefined): ReplyMessage | undefined {
  try {
    const parsed = replyMessageSchema.safeParse(JSON.parse(body ?? ""));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** SQS's bounds on the tunables (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html). */
const tunablesSchema = z
  .object({
    retentionSeconds: z.number().int().min(60).max(1_209_600),
    heartbeatMs: z.number().positive(),
    waitTimeSeconds: z.number().int().min(0).max(20),
    retryBaseMs: z.number().positive(),
  })
  .strict();

/** The tunables given, defaulted once from REPLY_QUEUE_DEFAULTS; OptionsError naming a bad one. */
function replyQueueTunables(options: ReplyQueueOptions): z.infer<typeof tunablesSchema> {
  const parsed = tunablesSchema.safeParse({
    retentionSeconds: options.retentionSeconds ?? REPLY_QUEUE_DEFAULTS.retentionSeconds,
    heartbeatMs: options.heartbeatMs ?? REPLY_QUEUE_DEFAULTS.heartbeatMs,
    waitTimeSeconds: options.waitTimeSeconds ?? REPLY_QUEUE_DEFAULTS.waitTimeSeconds,
    retryBaseMs: options.retryBaseMs ?? REPLY_QUEUE_DEFAULTS.retryBaseMs,
  });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new OptionsError("reply queue", [String(issue?.path[0])], issue?.message ?? "invalid");
}

const NO_QUEUE = new Set(["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"]);

/**
 * The reply queue of one ingest replica: AWS's temporary-queue pattern for request/reply
 * (https://aws.amazon.com/blogs/compute/simple-two-way-messaging-using-the-amazon-sqs-temporary-queue-client/),
 * so that a caller waiting for its answer costs no DynamoDB poll loop. The queue
 * `<prefix>-reply-<replica>` is made on first use, tagged with a heartbeat refreshed every minute
 * (the reconciler removes queues whose heartbeat is stale: a replica that died without `close()`),
 * and read by one long-poll loop that hands `delta`/`done` messages to the waiting callers by
 * request id and deletes them. `close()` stops the loop and deletes the queue.
 *
 * Why not sqs-consumer (as the workers' loop is not either): one loop, no handler semantics, no
 * visibility management — every message is deleted as soon as it is read, whoever it was for.
 *
 * @example
 * const replies = new ReplyQueue({ sqs, prefix: "deepqueue", logger });
 * const queueUrl = await replies.url();
 * const off = replies.subscribe(requestId, (message) => ...);
 * await replies.close();
 */
export class ReplyQueue implements ReplyInbox {
  readonly name: string;
  readonly #sqs: SQSClient;
  readonly #logger: Logger;
  readonly #router: ReplyRouter;
  readonly #settings: Required<
    Pick<ReplyQueueOptions, "retentionSeconds" | "heartbeatMs" | "waitTimeSeconds" | "retryBaseMs" | "now">
  >;
  readonly #abort = new AbortController();
  #url: Promise<string> | undefined;
  #loop: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ReplyQueueOptions) {
    this.#sqs = options.sqs;
    this.#logger = options.logger;
    this.#router = new ReplyRouter(options);
    this.name = replyQueueName(options.prefix, options.replicaId ?? randomBytes(6).toString("hex"));
    this.#settings = { ...replyQueueTunables(options), now: options.now ?? Date.now };
  }

  url(): Promise<string> {
    if (this.#closing) return Promise.reject(new DeepqueueError(`reply queue ${this.name} is closed`));
    if (!this.#url) {
      this.#url = this.#create();
      // A failed creation is not remembered: the next caller tries again.
      this.#url.catch(() => {
        this.#url = undefined;
      });
      this.#loop ??= this.#url.then(
        () => this.#receiveLoop(),
        () => {
          this.#loop = undefined;
        },
      );
    }
    return this.#url;
  }

  subscribe(requestId: string, listener: ReplyListener): () => void {
    const off = this.#router.subscribe(requestId, listener);
    waitingCallers.set(this.#router.waiting);
    return () => {
      off();
      waitingCallers.set(this.#router.waiting);
    };
  }

  /** Stops the loop and deletes the queue (ingest's `close()`); safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#abort.abort();
      clearInterval(this.#heartbeat);
      await this.#loop?.catch(() => {});
      const url = await this.#url?.catch(() => undefined);
      if (!url) return;
      await this.#sqs
        .send(new DeleteQueueCommand({ QueueUrl: url }))
        .catch((error) =>
          this.#logger.warn({ err: error, queue: this.name }, "could not delete the reply queue"),
        );
    })();
    return this.#closing;
  }

  async #create(): Promise<string> {
    const out = await this.#sqs.send(
      new CreateQueueCommand({
        QueueName: this.name,
        Attributes: { MessageRetentionPeriod: String(this.#settings.retentionSeconds) },
        tags: { [REPLY_HEARTBEAT_TAG]: this.#heartbeatValue(), "deepqueue:role": "reply" },
      }),
    );
    if (!out.QueueUrl) throw new DeepqueueError(`queue ${this.name} has no URL`);
    const url = out.QueueUrl;
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => void this.#beat(url), this.#settings.heartbeatMs);
    this.#heartbeat.unref();
    this.#logger.info({ queue: this.name }, "reply queue ready");
    return url;
  }

  #heartbeatValue(): string {
    return String(Math.floor(this.#settings.now() / 1000));
  }

  async #beat(url: string): Promise<void> {
    await this.#sqs
      .send(new TagQueueCommand({ QueueUrl: url, Tags: { [REPLY_HEARTBEAT_TAG]: this.#heartbeatValue() } }))
      .catch((error) =>
        this.#logger.warn({ err: error, queue: this.name }, "could not refresh the heartbeat"),
      );
  }

  async #receiveLoop(): Promise<void> {
    const signal = this.#abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const url = await this.url();
        const out = await this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: this.#settings.waitTimeSeconds,
          }),
          { abortSignal: signal },
        );
        failures = 0;
        const messages = out.Messages ?? [];
        if (messages.length === 0) continue;
        for (const message of messages) this.#dispatch(message);
        // Not awaited: the next receive need not wait for the delete (the next delta may be there).
        void this.#delete(url, messages);
      } catch (error) {
        if (signal.aborted) return;
        failures += 1;
        await this.#onReceiveError(error, failures);
      }
    }
  }

  #dispatch(message: Message): void {
    const reply = parseReply(message.Body);
    if (reply) this.#router.dispatch(reply);
    else
      this.#logger.warn(
        { queue: this.name, message_id: message.MessageId },
        "malformed reply message dropped",
      );
  }

  async #delete(url: string, messages: Message[]): Promise<void> {
    // A reply that is not deleted only comes back once more after its visibility timeout, to a
    // caller that has it already (deltas carry their seq) or has gone: a failure is logged, not retried.
    await this.#sqs
      .send(
        new DeleteMessageBatchCommand({
          QueueUrl: url,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      )
      .catch((error) =>
        this.#logger.warn({ err: error, queue: this.name }, "could not delete reply messages"),
      );
  }

  async #onReceiveError(error: unknown, failures: number): Promise<void> {
    const name = (error as { name?: string })?.name ?? "";
    // Removed under us (the reconciler judged this replica gone): made again on the next turn.
    if (NO_QUEUE.has(name)) this.#url = undefined;
    this.#logger.warn({ err: error, queue: this.name, failures }, "reply queue receive failed; retrying");
    const delay = Math.min(20_000, this.#settings.retryBaseMs * 2 ** (failures - 1));
    await sleep(delay, undefined, { signal: this.#abort.signal }).catch(() => {});
  }
}
