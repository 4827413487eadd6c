import { SendMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { dlqName } from "./names.ts";
import { ownQueueUrl } from "./record-parsing.ts";
import type { QueueTarget } from "./retries.ts";

/**
 * Moves a poison message to the dead-letter queue at once, with the reason as
 * a message attribute, instead of failing it five times until the redrive
 * policy does: a malformed body fails the same way every time, and each wasted
 * receive would hold a batch slot. The caller then reports the record as
 * processed (deleted). If the DLQ send fails, the caller reports it failed and
 * the redrive policy still moves it after maxReceiveCount receives. It goes to the DLQ of the
 * record's own queue (`<queue>-dlq`), whichever lane it came from.
 *
 * @example await sendToDlq({ sqs, queueUrl: dlqUrl }, record, error.message);
 */
export async function sendToDlq(target: QueueTarget, record: SQSRecord, reason: string): Promise<void> {
  await target.sqs.send(
    new SendMessageCommand({
      QueueUrl: ownQueueUrl(record, target.queueUrl, dlqName),
      MessageBody: record.body,
      MessageAttributes: {
        "deepqueue-error": { DataType: "String", StringValue: reason.slice(0, 1000) },
        "deepqueue-source-message-id": { DataType: "String", StringValue: record.messageId },
      },
    }),
  );
}
