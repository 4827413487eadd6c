import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import middy from "@middy/core";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { loadDeliverEnv } from "./config.ts";
import { createDeliverer, type DeliverDeps } from "./deliver.ts";
import { createDeliverDeps } from "./deps.ts";

/**
 * The deliver function: an SQS handler on `<prefix>-delivery` with partial
 * batch failures (one bad record never fails its neighbours).
 *
 * @example const handler = createDeliverHandler(createDeliverDeps(loadDeliverEnv()));
 */
export function createDeliverHandler(deps: DeliverDeps) {
  const deliverer = createDeliverer(deps);
  const recordHandler = async (record: SQSRecord) => {
    const outcome = await deliverer.deliver(record.body, record.messageId);
    deps.logger.debug({ message_id: record.messageId, outcome }, "delivery message handled");
    return outcome;
  };
  return middy(
    async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
      // A processor per invocation: the worker runtime may run invocations concurrently.
      processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), {
        context,
        throwOnFullBatchFailure: false,
      }),
  );
}

/** The Lambda export: dependencies built once per process from the environment. */
export const handler = createDeliverHandler(createDeliverDeps(loadDeliverEnv()));
