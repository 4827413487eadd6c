import type { SQSRecord } from "aws-lambda";
import type { z } from "zod";
import { describeIssues } from "../../events/index.ts";
import { DeepqueueError } from "./errors.ts";

/** A record whose body is not a valid event: it can never succeed, however often it is retried. */
export class PoisonMessageError extends DeepqueueError {
  readonly messageId: string;
  constructor(messageId: string, reason: string) {
    super(`message ${messageId} is not a valid event: ${reason}`);
    this.name = "PoisonMessageError";
    this.messageId = messageId;
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

/** Message attribute carrying the receives of earlier copies of a requeued message. */
export const ATTEMPTS_ATTRIBUTE = "deepqueue-attempts";

/**
 * Message attribute of an inference message whose caller waits for a streamed answer ("true"):
 * the batcher's worker takes it without a batching window (SqsWorkerOptions.skipsWindow).
 */
export const STREAM_ATTRIBUTE = "deepqueue-stream";

/** The attributes of an inference message: STREAM_ATTRIBUTE when its caller waits for a stream. */
export function inferenceAttributes(request: {
  reply?: { stream?: boolean | undefined } | undefined;
}): Record<string, string> | undefined {
  return request.reply?.stream ? { [STREAM_ATTRIBUTE]: "true" } : undefined;
}

/** Whether a received message carries STREAM_ATTRIBUTE: its caller waits for a streamed answer. */
export function streamsAnswer(message: {
  MessageAttributes?: Record<string, { StringValue?: string | undefined }> | undefined;
}): boolean {
  return message.MessageAttributes?.[STREAM_ATTRIBUTE]?.StringValue === "true";
}

/** Attempts so far, this one included, across requeued copies (1 on the very first receive). */
export function attemptNumber(record: SQSRecord): number {
  const prior = Number(record.messageAttributes?.[ATTEMPTS_ATTRIBUTE]?.stringValue ?? 0) || 0;
  return prior + receiveCount(record);
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

/**
 * The URL of the queue `record` came from (or, with `name`, of a queue named after it: its DLQ),
 * built like `like` (same endpoint and account): a retry or a dead letter always goes to the
 * record's own lane, whichever queue URL the caller had at hand. `like` itself when the record
 * has no SQS eventSourceARN.
 *
 * @example ownQueueUrl(batchLaneRecord, "http://localhost:4566/000000000000/deepqueue-inference") // "…/deepqueue-inference-batch"
 */
export function ownQueueUrl(
  record: SQSRecord,
  like: string,
  name: (source: string) => string = (n) => n,
): string {
  if (!record.eventSourceARN?.startsWith("arn:aws:sqs:")) return like;
  return like.replace(/[^/]+$/, name(sourceQueueName(record)));
}
