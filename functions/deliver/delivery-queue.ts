import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { dlqName, queueName } from "../shared/names.ts";
import type { QueueUrls } from "../shared/queues.ts";

/** SQS's longest per-message delay (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-timers.html); longer waits are chained. */
const MAX_DELAY_SECONDS = 900;

/**
 * Retry state travels in the delivery message itself, as CloudEvents
 * extension attributes on its envelope (lower-case alphanumeric names, per
 * the spec), so it survives any runtime that hands the handler only the body.
 */
export const DELIVERY_EXTENSIONS = {
  /** Callback attempts made so far. */
  attempt: "dqattempt",
  /** ISO time before which the next attempt must not start (chains delays past 15 minutes). */
  notBefore: "dqnotbefore",
  /** True once the result event is on the tenant's result queue: retries do not put it again. */
  published: "dqpublished",
  /** On dead-lettered messages: why delivery gave up. */
  failure: "dqfailure",
} as const;

/** A delivery message as received: the CloudEvent envelope with our extensions. */
export type Envelope = Record<string, unknown> & { data?: { event?: Record<string, unknown> } };

/** The retry state a delivery message carries. */
export interface RetryState {
  /** Callback attempts made so far. */
  attempt: number;
  /** Epoch ms before which the next attempt must not start (NaN when none). */
  notBefore: number;
}

/** The retry state of a received message. */
export function retryState(raw: Envelope): RetryState {
  return {
    attempt: Number(raw[DELIVERY_EXTENSIONS.attempt] ?? 0) || 0,
    notBefore: Date.parse(String(raw[DELIVERY_EXTENSIONS.notBefore] ?? "")),
  };
}

/**
 * The delivery queue and its DLQ as deliver uses them: a message re-sent to
 * run again later (delayed, carrying its retry state), or dead-lettered with
 * the reason.
 *
 * @example const delay = await queue.requeue(raw, { attempt: 2, notBefore: Date.now() + 300_000 }, Date.now());
 */
export class DeliveryQueue {
  readonly #name: string;

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrls: QueueUrls,
    prefix: string,
  ) {
    this.#name = queueName(prefix, "delivery");
  }

  get name(): string {
    return this.#name;
  }

  /** Re-sends the message to run again at `state.notBefore`; the delay it was sent with, in seconds. */
  async requeue(raw: Envelope, state: RetryState, now: number): Promise<number> {
    const delaySeconds = Math.max(0, (state.notBefore - now) / 1000);
    const body = {
      ...raw,
      [DELIVERY_EXTENSIONS.attempt]: state.attempt,
      [DELIVERY_EXTENSIONS.notBefore]: new Date(state.notBefore).toISOString(),
      [DELIVERY_EXTENSIONS.published]: true,
    };
    await this.#send(this.#name, JSON.stringify(body), delaySeconds);
    return delaySeconds;
  }

  /** To the DLQ with `failure`; attempts are dropped, so a redriven message starts a fresh schedule. */
  async deadLetter(raw: Envelope | string, failure: string): Promise<void> {
    const body =
      typeof raw === "string"
        ? raw
        : JSON.stringify({
            ...raw,
            [DELIVERY_EXTENSIONS.attempt]: undefined,
            [DELIVERY_EXTENSIONS.notBefore]: undefined,
            [DELIVERY_EXTENSIONS.failure]: failure,
          });
    await this.#send(dlqName(this.#name), body);
  }

  async #send(queue: string, body: string, delaySeconds = 0): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: await this.queueUrls.get(queue),
        MessageBody: body,
        DelaySeconds: delaySeconds > 0 ? Math.min(MAX_DELAY_SECONDS, Math.ceil(delaySeconds)) : undefined,
      }),
    );
  }
}
