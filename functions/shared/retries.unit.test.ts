import type { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { sendToDlq } from "./dead-letters.ts";
import { ownQueueUrl } from "./record-parsing.ts";
import { deferRecord, retryLater } from "./retries.ts";
import { VisibilityClaims, visibilityClaims } from "./visibility-claims.ts";

const base = "http://127.0.0.1:4566/000000000000";

/** An SQS client that records what it is asked (a fake dependency). */
function recordingSqs(): {
  sqs: SQSClient;
  sent: Array<{ command: string; input: Record<string, unknown> }>;
} {
  const sent: Array<{ command: string; input: Record<string, unknown> }> = [];
  const sqs = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      sent.push({ command: command.constructor.name, input: command.input });
      return {};
    },
  } as unknown as SQSClient;
  return { sqs, sent };
}

function batchLaneRecord(receives = "1"): SQSRecord {
  return {
    messageId: "m-1",
    receiptHandle: "rh-1",
    body: '{"x":1}',
    attributes: {
      ApproximateReceiveCount: receives,
      SentTimestamp: "0",
      SenderId: "",
      ApproximateFirstReceiveTimestamp: "0",
    },
    messageAttributes: {},
    md5OfBody: "",
    eventSource: "aws:sqs",
    eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:deepqueue-inference-batch",
    awsRegion: "us-east-1",
  };
}

describe("retries and dead letters go to the record's own queue", () => {
  it("builds the record's queue URL like the one at hand", () => {
    const record = batchLaneRecord();
    expect(ownQueueUrl(record, `${base}/deepqueue-inference`)).toBe(`${base}/deepqueue-inference-batch`);
    expect(ownQueueUrl({ ...record, eventSourceARN: "" }, `${base}/q`)).toBe(`${base}/q`);
  });

  it("retryLater changes the visibility on the batch lane and claims the message for the running worker", async () => {
    const { sqs, sent } = recordingSqs();
    const claims = new VisibilityClaims();
    await visibilityClaims.run(claims, () =>
      retryLater({ sqs, queueUrl: `${base}/deepqueue-inference` }, batchLaneRecord(), 12.4),
    );
    expect(sent).toEqual([
      {
        command: "ChangeMessageVisibilityCommand",
        input: {
          QueueUrl: `${base}/deepqueue-inference-batch`,
          ReceiptHandle: "rh-1",
          VisibilityTimeout: 12,
        },
      },
    ]);
    expect(claims.has("rh-1")).toBe(true);
  });

  it("deferRecord requeues a late attempt as a delayed copy on the batch lane", async () => {
    const { sqs, sent } = recordingSqs();
    const how = await deferRecord({ sqs, queueUrl: `${base}/deepqueue-inference` }, batchLaneRecord("4"), 30);
    expect(how).toBe("requeued");
    expect(sent[0]).toMatchObject({
      command: "SendMessageCommand",
      input: { QueueUrl: `${base}/deepqueue-inference-batch`, DelaySeconds: 30 },
    });
  });

  it("sendToDlq sends to the batch lane's dead-letter queue", async () => {
    const { sqs, sent } = recordingSqs();
    await sendToDlq(
      { sqs, queueUrl: `${base}/deepqueue-inference-dlq` },
      batchLaneRecord(),
      "not a valid event",
    );
    expect(sent[0]).toMatchObject({
      command: "SendMessageCommand",
      input: { QueueUrl: `${base}/deepqueue-inference-batch-dlq`, MessageBody: '{"x":1}' },
    });
  });
});
