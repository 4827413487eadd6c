import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { type BatchControlMessage, batchControlMessageSchema } from "../../events/index.ts";
import { dlqName, queueName } from "../shared/names.ts";
import { PoisonMessageError, parseRecord, sendToDlq } from "../shared/sqs-records.ts";
import { type BatchesDeps, batchesDepsFromEnv } from "./deps.ts";

/**
 * The batch worker as an SQS handler on `<prefix>-batches`: the control messages of one receive
 * are handled together (finished lines counted with one update per batch). A message that is not
 * a control message goes to the DLQ; when a step fails, the batch's messages come back (partial
 * batch failure) and the step runs again — every step is safe to repeat.
 *
 * @example const handler = createBatchesHandler(batchesDepsFromEnv());
 */
export function createBatchesHandler(deps: BatchesDeps) {
  const dlq = () => deps.queueUrls.get(dlqName(queueName(deps.prefix, "batches")));
  return async (event: SQSEvent, _context?: Context): Promise<SQSBatchResponse> => {
    const messages: Array<{ id: string; message: BatchControlMessage }> = [];
    for (const record of event.Records) {
      try {
        messages.push({ id: record.messageId, message: parseRecord(record, batchControlMessageSchema) });
      } catch (error) {
        if (!(error instanceof PoisonMessageError)) throw error;
        deps.logger.warn(
          { message_id: record.messageId, reason: error.message },
          "poison message to the DLQ",
        );
        await sendToDlq({ sqs: deps.sqs, queueUrl: await dlq() }, record, error.message);
      }
    }
    try {
      await deps.worker.handle(messages.map((m) => m.message));
      return { batchItemFailures: [] };
    } catch (error) {
      deps.logger.error(
        { err: error, messages: messages.length },
        "batch step failed; its messages come back",
      );
      return { batchItemFailures: messages.map((m) => ({ itemIdentifier: m.id })) };
    }
  };
}

let lambdaHandler: ReturnType<typeof createBatchesHandler> | undefined;

/** The Lambda export: dependencies built on the first event, from the environment. */
export const handler = (event: SQSEvent, context: Context) => {
  lambdaHandler ??= createBatchesHandler(batchesDepsFromEnv());
  return lambdaHandler(event, context);
};
