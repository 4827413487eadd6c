import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueUrlCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { type ResultEvent, resultEventSchema } from "../events/index.ts";
import { createSqsClient } from "../functions/shared/clients.ts";
import { DEFAULT_PREFIX, resultQueueName } from "../functions/shared/names.ts";
import type { DeepqueueClient } from "./client.ts";

/** A result event as it comes off the queue; `dataref` is set when the claim check applied and was not resolved. */
export type ConsumedEvent = ResultEvent;

export interface ResultConsumerOptions {
  /** The tenant whose queue (`<prefix>-results-<tenant>`) to read. @default "dev" */
  tenant?: string;
  /** @default "deepqueue" */
  prefix?: string;
  /** Read this queue instead of the tenant's. */
  queueUrl?: string;
  /** @default createSqsClient() (honours AWS_ENDPOINT_URL_SQS) */
  sqs?: SQSClient;
  /** Keep waiting for new events (true), or stop once the queue is empty (false). @default true */
  follow?: boolean;
  /** Long-poll wait per receive, 0-20 s. @default 20 (1 when not following) */
  waitTimeSeconds?: number;
  /** Messages per receive, 1-10. @default 10 */
  batchSize?: number;
  /** How long a received event stays hidden from other consumers while it is handled. @default 60 */
  visibilityTimeoutSeconds?: number;
  /** How many recent event ids are remembered to drop duplicates. @default 10 000 */
  seenCapacity?: number;
  /** Resolves claim checks (`dataref`, results over 256 KiB) into the full record with `GET /v1/requests/{id}`. */
  client?: Pick<DeepqueueClient, "get">;
  /** Called for what cannot be handled: an unreadable message (left for the queue's DLQ), a failed handler, a receive error. */
  onError?: (error: unknown, context: { message?: Message; event?: ConsumedEvent }) => void;
}

/**
 * Reads a tenant's result queue with at-least-once semantics: an event is
 * deleted only after its handler (or loop body) finished, so a crash means
 * it comes again; duplicates (SQS redelivery, a repeated step upstream) are
 * dropped by event id, remembered in a bounded LRU.
 *
 * @example
 * const consumer = new ResultConsumer({ tenant: "acme" });
 * process.once("SIGINT", () => consumer.stop());
 * for await (const event of consumer) console.log(event.type, event.data.result?.text);
 */
export class ResultConsumer implements AsyncIterable<ConsumedEvent> {
  readonly #options: ResultConsumerOptions;
  readonly #sqs: SQSClient;
  readonly #seen = new Map<string, true>();
  readonly #abort = new AbortController();
  #queueUrl: Promise<string> | undefined;

  constructor(options: ResultConsumerOptions = {}) {
    this.#options = options;
    this.#sqs = options.sqs ?? createSqsClient();
    if (options.batchSize !== undefined && (options.batchSize < 1 || options.batchSize > 10)) {
      throw new Error("ResultConsumer: batchSize must be 1-10");
    }
  }

  /** The queue being read. */
  queueUrl(): Promise<string> {
    if (this.#options.queueUrl) return Promise.resolve(this.#options.queueUrl);
    const name = resultQueueName(this.#options.prefix ?? DEFAULT_PREFIX, this.#options.tenant ?? "dev");
    this.#queueUrl ??= this.#sqs.send(new GetQueueUrlCommand({ QueueName: name })).then(
      (out) => out.QueueUrl!,
      (error: unknown) => {
        this.#queueUrl = undefined;
        if (!/NonExistentQueue|QueueDoesNotExist/.test((error as { name?: string }).name ?? "")) throw error;
        throw new Error(
          `no result queue ${name}: make the tenant first (deepqueue keys create), and point AWS_ENDPOINT_URL_SQS at the stack`,
          { cause: error },
        );
      },
    );
    return this.#queueUrl;
  }

  /** Stops after the event being handled; an in-flight receive is cancelled. */
  stop(): void {
    this.#abort.abort();
  }

  get stopped(): boolean {
    return this.#abort.signal.aborted;
  }

  /**
   * Handles events one at a time until stopped (or, without `follow`, until
   * the queue is empty). A handler that throws leaves its event on the queue:
   * it comes back after the visibility timeout (and, after 5 tries, goes to
   * the queue's DLQ).
   */
  async run(onEvent: (event: ConsumedEvent) => unknown): Promise<void> {
    for await (const { event, message } of this.#events()) {
      try {
        await onEvent(event);
      } catch (error) {
        this.#options.onError?.(error, { message, event });
        continue;
      }
      await this.#ack(message, event.id);
    }
  }

  /** `for await (const event of consumer)`: each event is deleted when the loop asks for the next one. */
  async *[Symbol.asyncIterator](): AsyncGenerator<ConsumedEvent, void, undefined> {
    for await (const { event, message } of this.#events()) {
      // A throw (or break) in the loop body ends this generator here: the event is not deleted.
      yield event;
      await this.#ack(message, event.id);
    }
  }

  async *#events(): AsyncGenerator<{ event: ConsumedEvent; message: Message }> {
    const follow = this.#options.follow ?? true;
    const url = await this.queueUrl();
    let backoffMs = 0;
    while (!this.stopped) {
      let messages: Message[];
      try {
        const out = await this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: this.#options.batchSize ?? 10,
            WaitTimeSeconds: this.#options.waitTimeSeconds ?? (follow ? 20 : 1),
            VisibilityTimeout: this.#options.visibilityTimeoutSeconds ?? 60,
          }),
          { abortSignal: this.#abort.signal },
        );
        messages = out.Messages ?? [];
        backoffMs = 0;
      } catch (error) {
        if (this.stopped) return;
        this.#options.onError?.(error, {});
        // Back off on connection errors (like bbc/sqs-consumer), up to 30 s.
        backoffMs = Math.min(30_000, backoffMs ? backoffMs * 2 : 500);
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        continue;
      }
      if (messages.length === 0) {
        if (!follow) return;
        continue;
      }
      for (const [index, message] of messages.entries()) {
        if (this.stopped) {
          // Hand the rest back at once instead of hiding them until their visibility times out.
          await this.#release(url, messages.slice(index));
          return;
        }
        const event = await this.#parse(message).catch((error: unknown) => {
          // A claim check that cannot be resolved now: left on the queue, it comes back later.
          this.#options.onError?.(error, { message });
          return undefined;
        });
        if (!event) continue;
        if (this.#seen.has(event.id)) {
          await this.#delete(url, message);
          continue;
        }
        yield { event, message };
      }
    }
  }

  async #parse(message: Message): Promise<ConsumedEvent | undefined> {
    let raw: unknown;
    try {
      raw = JSON.parse(message.Body ?? "");
    } catch (error) {
      this.#options.onError?.(new Error("result message is not JSON", { cause: error }), { message });
      return undefined;
    }
    const parsed = resultEventSchema.safeParse(raw);
    if (!parsed.success) {
      this.#options.onError?.(new Error(`result message is not a result event: ${parsed.error.message}`), {
        message,
      });
      return undefined;
    }
    const { dataref, ...event } = parsed.data;
    if (dataref === undefined) return parsed.data;
    if (!this.#options.client) return parsed.data;
    // Resolved: the full record replaces the truncated data, and the pointer goes.
    const record = await this.#options.client.get(event.subject);
    return { ...event, data: record };
  }

  async #ack(message: Message, eventId: string): Promise<void> {
    await this.#delete(await this.queueUrl(), message);
    this.#seen.set(eventId, true);
    const capacity = this.#options.seenCapacity ?? 10_000;
    // A Map iterates in insertion order: the first key is the oldest.
    while (this.#seen.size > capacity) this.#seen.delete(this.#seen.keys().next().value!);
  }

  async #delete(url: string, message: Message): Promise<void> {
    await this.#sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: message.ReceiptHandle! }));
  }

  async #release(url: string, messages: Message[]): Promise<void> {
    for (const message of messages) {
      await this.#sqs
        .send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: url,
            ReceiptHandle: message.ReceiptHandle!,
            VisibilityTimeout: 0,
          }),
        )
        .catch(() => {});
    }
  }
}
