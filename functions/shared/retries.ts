import { ChangeMessageVisibilityCommand, SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { DeepqueueError, type DeepqueueErrorOptions } from "./errors.ts";
import { ATTEMPTS_ATTRIBUTE, attemptNumber, ownQueueUrl, receiveCount } from "./record-parsing.ts";
import { QUEUE_DEFAULTS } from "./resources.ts";
import { claimVisibility } from "./visibility-claims.ts";

/**
 * A queue and the client to reach it. For a record's retry or dead letter, `queueUrl` only says
 * where queues live: the record's own queue (or its DLQ) is used (ownQueueUrl).
 */
export interface QueueTarget {
  sqs: SQSClient;
  queueUrl: string;
}

/** Thrown for a record whose message comes back later (its visibility is already set): a batch item failure. */
export class RetryLaterError extends DeepqueueError {
  constructor(reason: string, options?: DeepqueueErrorOptions) {
    super(reason, options);
    this.name = "RetryLaterError";
  }
}

/**
 * Makes a message visible again in `seconds` (the record must then be reported
 * as a batch item failure), on the record's own queue. Visibility is whole seconds, 0..43200. The worker
 * runtime's heartbeat leaves the message alone from then on (visibility-claims.ts).
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
 *
 * @example await retryLater({ sqs, queueUrl }, record, 30); // then report record as failed
 */
export async function retryLater(target: QueueTarget, record: SQSRecord, seconds: number): Promise<void> {
  claimVisibility(record.receiptHandle);
  await target.sqs.send(
    new ChangeMessageVisibilityCommand({
      QueueUrl: ownQueueUrl(record, target.queueUrl),
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
 * original can be deleted (returns "requeued", report it processed). Either way on the record's
 * own queue (a batch line stays in the batch lane). Without
 * this, a turn waiting on a slow predecessor would land in the DLQ.
 *
 * @example if ((await deferRecord(target, record, 5)) === "retry") throw new RetryLaterError("waiting");
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
      QueueUrl: ownQueueUrl(record, target.queueUrl),
      MessageBody: record.body,
      DelaySeconds: Math.max(0, Math.min(900, Math.round(seconds))),
      MessageAttributes: {
        [ATTEMPTS_ATTRIBUTE]: { DataType: "Number", StringValue: String(attemptNumber(record)) },
      },
    }),
  );
  return "requeued";
}
