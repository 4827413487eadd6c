/**
 * What the SQS-driven handlers (cache, batcher, deliver) share, one module per responsibility:
 * parsing a record and reading its receive facts (record-parsing.ts), returning a message to its
 * queue later (retries.ts), poison messages to the DLQ (dead-letters.ts), sending events in
 * batches (batch-sender.ts). Re-exported here so a handler imports them from one place.
 */
export { BatchSender, MessageNotSentError } from "./batch-sender.ts";
export { sendToDlq } from "./dead-letters.ts";
export {
  ATTEMPTS_ATTRIBUTE,
  attemptNumber,
  inferenceAttributes,
  ownQueueUrl,
  PoisonMessageError,
  parseRecord,
  receiveCount,
  STREAM_ATTRIBUTE,
  sourceQueueName,
  streamsAnswer,
} from "./record-parsing.ts";
export { deferRecord, type QueueTarget, RetryLaterError, retryLater } from "./retries.ts";
