import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { type DeliverOptions, ResultDeliverer } from "./deliver.ts";
import { deliverDepsFromEnv } from "./deps.ts";

/**
 * The deliver function: an SQS handler on `<prefix>-delivery` with partial
 * batch failures (one bad record never fails its neighbours).
 *
 * @example const handler = createDeliverHandler(deliverDepsFromEnv());
 */
export function createDeliverHandler(deps: DeliverOptions) {
  const deliverer = new ResultDeliverer(deps);
  const recordHandler = async (record: SQSRecord) => {
    const outcome = await deliverer.deliver(record.body, record.messageId);
    deps.logger.debug({ message_id: record.messageId, outcome }, "delivery message handled");
    return outcome;
  };
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
    // A processor per invocation: the worker runtime may run invocations concurrently.
    processPartialResponse(event, recordHandler, new BatchProcessor(EventType.SQS), {
      context,
      throwOnFullBatchFailure: false,
    });
}

let lambdaHandler: ReturnType<typeof createDeliverHandler> | undefined;

/** The Lambda entry point: dependencies built once per container, on the first event (importing parses no environment). */
export const handler = (event: SQSEvent, context: Context) => {
  lambdaHandler ??= createDeliverHandler(deliverDepsFromEnv());
  return lambdaHandler(event, context);
};
