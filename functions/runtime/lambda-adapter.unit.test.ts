import type { Message } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import { HandlerResponseError, lambdaContext, messagesToDelete, sqsEvent } from "./lambda-adapter.ts";

const messages: Message[] = ["a", "b", "c"].map((body, n) => ({
  MessageId: `id-${n}`,
  ReceiptHandle: `rh-${n}`,
  Body: body,
  Attributes: { ApproximateReceiveCount: "2", SentTimestamp: "1700000000000" },
  MessageAttributes: { "deepqueue-attempts": { DataType: "Number", StringValue: "3" } },
}));

describe("lambda adapter", () => {
  it("turns received messages into Lambda's SQSEvent records, with the queue's ARN", () => {
    const arn = "arn:aws:sqs:eu-west-1:000000000000:deepqueue-inference-batch";
    const event = sqsEvent(messages, arn, "eu-west-1");
    expect(event.Records.map((r) => r.body)).toEqual(["a", "b", "c"]);
    expect(event.Records[1]).toMatchObject({
      messageId: "id-1",
      receiptHandle: "rh-1",
      eventSource: "aws:sqs",
      eventSourceARN: arn,
      awsRegion: "eu-west-1",
      attributes: { ApproximateReceiveCount: "2", SentTimestamp: "1700000000000" },
      messageAttributes: { "deepqueue-attempts": { dataType: "Number", stringValue: "3" } },
    });
    expect(event.Records[0]!.attributes).not.toHaveProperty("MessageGroupId");
  });

  it("gives the context the visibility timeout as remaining time", () => {
    const context = lambdaContext("batcher", 30);
    expect(context.functionName).toBe("batcher");
    expect(context.getRemainingTimeInMillis()).toBeGreaterThan(29_000);
    expect(context.getRemainingTimeInMillis()).toBeLessThanOrEqual(30_000);
    expect(lambdaContext("batcher", 30).awsRequestId).not.toBe(context.awsRequestId);
  });

  it("deletes every message when the handler returns nothing", () => {
    expect(messagesToDelete(messages, undefined)).toEqual(messages);
    expect(messagesToDelete(messages, null)).toEqual(messages);
  });

  it("keeps the messages a partial batch response names, deletes the rest", () => {
    const response = { batchItemFailures: [{ itemIdentifier: "id-1" }] };
    expect(messagesToDelete(messages, response).map((m) => m.MessageId)).toEqual(["id-0", "id-2"]);
    expect(messagesToDelete(messages, { batchItemFailures: [] })).toEqual(messages);
  });

  it("fails the whole batch on an unknown itemIdentifier or a malformed response", () => {
    expect(() => messagesToDelete(messages, { batchItemFailures: [{ itemIdentifier: "id-9" }] })).toThrow(
      HandlerResponseError,
    );
    expect(() => messagesToDelete(messages, { batchItemFailures: [{ itemIdentifier: 7 }] })).toThrow(
      /unknown itemIdentifier 7/,
    );
    expect(() => messagesToDelete(messages, { ok: true })).toThrow(/no batchItemFailures array/);
  });
});
