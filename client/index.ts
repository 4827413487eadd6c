/**
 * deepqueue's TypeScript client: produce requests over the HTTP API and
 * consume result events from a tenant's result queue.
 *
 * @example
 * import { DeepqueueClient, ResultConsumer } from "deepqueue";
 */
export type {
  AcceptedResponse,
  BatchObject,
  BatchOutputLine,
  Conversation,
  FileObject,
  RequestRecord,
  ResultEvent,
  SubmitBodyInput,
} from "../events/index.ts";
export { resultEventSchema } from "../events/index.ts";
export {
  BatchesClient,
  DeepqueueApiError,
  DeepqueueClient,
  type DeepqueueClientOptions,
  FilesClient,
  type ListPage,
  type WaitOptions,
  WaitTimeoutError,
} from "./client.ts";
export { type ConsumedEvent, ResultConsumer, type ResultConsumerOptions } from "./consumer.ts";
