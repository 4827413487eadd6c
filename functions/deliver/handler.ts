import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import middy from "@middy/core";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createLogger } from "../shared/logger.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { loadDeliverEnv, retrySchedule } from "./config.ts";
import { createDeliverer, type DeliverDeps } from "./deliver.ts";

/**
 * The deliver function: an SQS handler on `<prefix>-delivery` with partial
 * batch failures (one bad record never fails its neighbours).
 *
 * @example const handler = createDeliverHandler({ sqs, requests, tenants, prefix, devMode: true, schedule: [0], logger });
 */
export function createDeliverHandler(deps: DeliverDeps) {
  const deliverer = createDeliverer(deps);
  const recordHandler = async (record: SQSRecord) => {
    const outcome = await deliverer.deliver(record.body);
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

/** Dependencies from the environment (Lambda style: built once per process). */
export function deliverDepsFromEnv(source: Record<string, string | undefined> = process.env): DeliverDeps {
  const env = loadDeliverEnv(source);
  const ddb = createDynamoClient({
    region: env.AWS_REGION,
    ...(env.AWS_ENDPOINT_URL_DYNAMODB ? { endpoint: env.AWS_ENDPOINT_URL_DYNAMODB } : {}),
  });
  return {
    sqs: createSqsClient({
      region: env.AWS_REGION,
      ...(env.AWS_ENDPOINT_URL_SQS ? { endpoint: env.AWS_ENDPOINT_URL_SQS } : {}),
    }),
    requests: new DynamoRequestStore(ddb, env.DEEPQUEUE_PREFIX),
    tenants: new DynamoTenantStore(ddb, env.DEEPQUEUE_PREFIX),
    prefix: env.DEEPQUEUE_PREFIX,
    devMode: env.DEEPQUEUE_DEV_MODE,
    schedule: retrySchedule(env),
    callbackTimeoutMs: env.DEEPQUEUE_CALLBACK_TIMEOUT_SECONDS * 1000,
    logger: createLogger({ name: "deliver", level: env.LOG_LEVEL }),
  };
}

export const handler = createDeliverHandler(deliverDepsFromEnv());
