import {
  ChangeMessageVisibilityCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import type { z } from "zod";
import { describeIssues } from "../../events/index.ts";
import { Coalescer } from "./coalescer.ts";
import { QUEUE_DEFAULTS } from "./resources.ts";

/**
 * What the SQS-driven handlers (cache, batcher, deliver) share: parsing a
 * record against its event schema, poison messages to the DLQ, returning a
 * message to its queue later, sending events.
 */

/** A record whose body is not a valid event: it can never succeed, however often it is retried. */
export class PoisonMessageError extends Error {
  readonly messageId: string;
  constructor(messageId: string, reason: string) {
    super(`message ${messageId} is not a valid event: ${reason}`);
    this.name = "PoisonMessageError";
    this.messageId = messageId;
  }
}

/** Thrown for a record whose message comes back later (its visibility is already set): a batch item failure. */
export class RetryLaterError extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = "RetryLaterError";
  }
}

/** Parses a record's body with `schema`; throws PoisonMessageError naming the problem. */
export function parseRecord<S extends z.ZodType>(record: SQSRecord, schema: S): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(record.body);
  } catch {
    throw new PoisonMessageError(record.messageId, "the body is not JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new PoisonMessageError(record.messageId, describeIssues(parsed.error));
  return parsed.data;
}

/** How many times SQS has handed this message out (1 on the first receive). */
export function receiveCount(record: SQSRecord): number {
  return Number(record.attributes.ApproximateReceiveCount) || 1;
}

/**
 * The name of the queue a record came from (the last part of its eventSourceARN): where its
 * retries and its dead letters go, whichever lane it was received on.
 *
 * @example sourceQueueName(record) // "deepqueue-inference-batch"
 */
export function sourceQueueName(record: SQSRecord): string {
  return record.eventSourceARN.split(":").pop() ?? record.eventSourceARN;
}

export interface QueueTarget {
  sqs: SQSClient;
  queueUrl: string;
}

/**
 * Moves a poison message to the dead-letter queue at once, with the reason as
 * a message attribute, instead of failing it five times until the redrive
 * policy does: a malformed body fails the same way every time, and each wasted
 * receive would hold a batch slot. The caller then reports the record as
 * processed (deleted). If the DLQ send fails, the caller reports it failed and
 * the redrive policy still moves it after maxReceiveCount receives.
 */
export async function sendToDlq(target: QueueTarget, record: SQSRecord, reason: string): Promise<void> {
  await target.sqs.send(
    new SendMessageCommand({
      QueueUrl: target.queueUrl,
      MessageBody: record.body,
      MessageAttributes: {
        "deepqueue-error": { DataType: "String", StringValue: reason.slice(0, 1000) },
        "deepqueue-source-message-id": { DataType: "String", StringValue: record.messageId },
      },
    }),
  );
}

/**
 * Receipt handles whose visibility a handler has set itself (a retry delay):
 * the worker runtime's heartbeat must not extend those. Empty on Lambda,
 * which has no heartbeat.
 */
export const handlerSetVisibility = new Set<string>();

/**
 * Makes a message visible again in `seconds` (the record must then be reported
 * as a batch item failure). Visibility is whole seconds, 0..43200.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
 */
export async function retryLater(target: QueueTarget, record: SQSRecord, seconds: number): Promise<void> {
  handlerSetVisibility.add(record.receiptHandle);
  await target.sqs.send(
    new ChangeMessageVisibilityCommand({
      QueueUrl: target.queueUrl,
      ReceiptHandle: record.receiptHandle,
      VisibilityTimeout: Math.max(0, Math.min(43_200, Math.round(seconds))),
    }),
  );
}

/**
 * Waits for something outside the message (an earlier conversation turn, a
 * coalesced leader) without spending the message's receives: while the
 * receive count is well below maxReceiveCount the message itself comes back
 * (ChangeMessageVisibility; returns "retry", report it failed); after that, a
 * fresh copy is sent with DelaySeconds (receive count back to 0) and the
 * original can be deleted (returns "requeued", report it processed). Without
 * this, a turn waiting on a slow predecessor would land in the DLQ.
 */
export async function deferRecord(
  target: QueueTarget,
  record: SQSRecord,
  seconds: number,
  maxReceiveCount: number = QUEUE_DEFAULTS.maxReceiveCount,
): Promise<"retry" | "requeued"> {
  if (receiveCount(record) < maxReceiveCount - 2) {
    await retryLater(target, record, seconds);
    return "retry";
  }
  await target.sqs.send(
    new SendMessageCommand({
      QueueUrl: target.queueUrl,
      MessageBody: record.body,
      DelaySeconds: Math.max(0, Math.min(900, Math.round(seconds))),
      MessageAttributes: {
        [ATTEMPTS_ATTRIBUTE]: { DataType: "Number", StringValue: String(attemptNumber(record)) },
      },
    }),
  );
  return "requeued";
}

/** Message attribute carrying the receives of earlier copies of a requeued message. */
export const ATTEMPTS_ATTRIBUTE = "deepqueue-attempts";

/** Attempts so far, this one included, across requeued copies (1 on the very first receive). */
export function attemptNumber(record: SQSRecord): number {
  const prior = Number(record.messageAttributes?.[ATTEMPTS_ATTRIBUTE]?.stringValue ?? 0) || 0;
  return prior + receiveCount(record);
}

/** Sends JSON bodies (CloudEvents) to a queue, ten per call. */
export async function sendEvents(target: QueueTarget, events: readonly unknown[]): Promise<void> {
  for (let i = 0; i < events.length; i += 10) {
    const chunk = events.slice(i, i + 10);
    if (chunk.length === 1) {
      await target.sqs.send(
        new SendMessageCommand({ QueueUrl: target.queueUrl, MessageBody: JSON.stringify(chunk[0]) }),
      );
      continue;
    }
    const out = await target.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: target.queueUrl,
        Entries: chunk.map((event, n) => ({ Id: String(n), MessageBody: JSON.stringify(event) })),
      }),
    );
    if (out.Failed?.length) {
      throw new Error(
        `${out.Failed.length} of ${chunk.length} messages were not sent: ${out.Failed[0]?.Message}`,
      );
    }
  }
}

/** One message for a BatchSender: its JSON body and optional string attributes. */
interface OutgoingMessage {
  body: string;
  attributes?: Record<string, string> | undefined;
}

/**
 * Sends events to one queue through SendMessageBatch: sends made while an
 * earlier batch is still on its way are gathered into the next one (group
 * commit, shared/coalescer.ts), up to ten per call; each caller's promise
 * settles with its own entry's outcome, so one failed entry fails only its
 * record. At low load a send goes out at once, alone.
 *
 * @example const delivery = new BatchSender(sqs, () => urls.get("deepqueue-delivery")); await delivery.send(event);
 */
export class BatchSender {
  readonly #coalescer: Coalescer<OutgoingMessage, void>;

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: () => Promise<string>,
    options: { maxConcurrent?: number } = {},
  ) {
    this.#coalescer = new Coalescer<OutgoingMessage, void>(
      { maxBatch: 10, maxConcurrent: options.maxConcurrent ?? 2 },
      (messages) => this.#sendBatch(messages),
    );
  }

  /** Sends `event` as JSON (or `body` as it is, when a string), with string message attributes. */
  send(event: unknown, attributes?: Record<string, string>): Promise<void> {
    return this.#coalescer.submit({
      body: typeof event === "string" ? event : JSON.stringify(event),
      attributes,
    });
  }

  async #sendBatch(messages: OutgoingMessage[]): Promise<Array<undefined | Error>> {
    const url = await this.queueUrl();
    const out = await this.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: url,
        Entries: messages.map((m, n) => ({
          Id: String(n),
          MessageBody: m.body,
          ...(m.attributes
            ? {
                MessageAttributes: Object.fromEntries(
                  Object.entries(m.attributes).map(([k, v]) => [k, { DataType: "String", StringValue: v }]),
                ),
              }
            : {}),
        })),
      }),
    );
    const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
    return messages.map((_, n) => {
      const failure = failed.get(String(n));
      return failure ? new Error(`message not sent: ${failure.Code} ${failure.Message ?? ""}`) : undefined;
    });
  }
}
