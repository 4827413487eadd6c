import { randomUUID } from "node:crypto";
import type { Message } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { DeepqueueError } from "../shared/errors.ts";

/**
 * What makes a Lambda-shaped SQS handler run off a queue: received messages as Lambda's
 * `SQSEvent` and `Context`, and the handler's partial batch response read back as the messages
 * to delete (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
 * No I/O: the worker (sqs-worker.ts) receives, deletes and releases.
 */

// biome-ignore lint/suspicious/noConfusingVoidType: the shape of aws-lambda's own SQSHandler (void | SQSBatchResponse)
export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | undefined | void>;

/** A handler answered with something that is not a valid partial batch response: the whole batch failed. */
export class HandlerResponseError extends DeepqueueError {
  constructor(message: string) {
    super(message);
    this.name = "HandlerResponseError";
  }
}

/**
 * The `SQSEvent` Lambda would pass for `messages` received from the queue `queueArn`.
 *
 * @example await handler(sqsEvent(messages, "arn:aws:sqs:us-east-1:000000000000:deepqueue-inference", "us-east-1"), context);
 */
export function sqsEvent(messages: readonly Message[], queueArn: string, region: string): SQSEvent {
  return { Records: messages.map((m) => sqsRecord(m, queueArn, region)) };
}

function sqsRecord(m: Message, queueArn: string, region: string): SQSRecord {
  const attributes = m.Attributes ?? {};
  return {
    messageId: m.MessageId!,
    receiptHandle: m.ReceiptHandle!,
    body: m.Body ?? "",
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? "1",
      SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
      SenderId: attributes.SenderId ?? "",
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      // In-memory objects handed to the handler: absent keys stay absent (Lambda's records have none).
      ...(attributes.MessageGroupId ? { MessageGroupId: attributes.MessageGroupId } : {}),
      ...(attributes.MessageDeduplicationId
        ? { MessageDeduplicationId: attributes.MessageDeduplicationId }
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
  };
}

/**
 * A Lambda `Context` for one invocation of function `name`; its remaining time is the messages'
 * visibility timeout.
 *
 * @example lambdaContext("batcher", 30).getRemainingTimeInMillis(); // ≤ 30000
 */
export function lambdaContext(name: string, visibilitySeconds: number): Context {
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

/**
 * Which messages to delete after the handler returned `response` (Lambda's rules): nothing
 * returned means all succeeded; otherwise every message not named in `batchItemFailures`.
 * A malformed response or an itemIdentifier of no message in the batch throws
 * HandlerResponseError: the whole batch failed, as on Lambda.
 *
 * @example messagesToDelete(messages, { batchItemFailures: [{ itemIdentifier: messages[0].MessageId }] }); // the rest
 */
export function messagesToDelete(messages: readonly Message[], response: unknown): Message[] {
  if (response === undefined || response === null) return [...messages];
  const failures = (response as SQSBatchResponse).batchItemFailures;
  if (!Array.isArray(failures))
    throw new HandlerResponseError("handler response has no batchItemFailures array");
  const ids = new Set(messages.map((m) => m.MessageId));
  const failed = new Set<string>();
  for (const failure of failures) {
    const id = failure?.itemIdentifier;
    if (typeof id !== "string" || !ids.has(id)) {
      throw new HandlerResponseError(`handler reported an unknown itemIdentifier ${JSON.stringify(id)}`);
    }
    failed.add(id);
  }
  return messages.filter((m) => !failed.has(m.MessageId!));
}
