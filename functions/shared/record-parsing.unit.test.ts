import type { SQSRecord } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { DeepqueueError } from "./errors.ts";
import { attemptNumber, PoisonMessageError, parseRecord, sourceQueueName } from "./record-parsing.ts";

function record(fields: Partial<SQSRecord> & { receives?: string; attempts?: string }): SQSRecord {
  return {
    messageId: "m-1",
    receiptHandle: "rh-1",
    body: fields.body ?? "{}",
    attributes: {
      ApproximateReceiveCount: fields.receives ?? "1",
      SentTimestamp: "0",
      SenderId: "",
      ApproximateFirstReceiveTimestamp: "0",
    },
    messageAttributes: fields.attempts
      ? { "deepqueue-attempts": { dataType: "Number", stringValue: fields.attempts } }
      : {},
    md5OfBody: "",
    eventSource: "aws:sqs",
    eventSourceARN: fields.eventSourceARN ?? "arn:aws:sqs:us-east-1:000000000000:deepqueue-inference",
    awsRegion: "us-east-1",
  };
}

describe("record parsing", () => {
  it("names the queue a record came from, whichever lane", () => {
    const arn = "arn:aws:sqs:eu-west-1:123456789012:deepqueue-inference-batch";
    expect(sourceQueueName(record({ eventSourceARN: arn }))).toBe("deepqueue-inference-batch");
  });

  it("counts attempts across requeued copies", () => {
    expect(attemptNumber(record({}))).toBe(1);
    expect(attemptNumber(record({ receives: "2", attempts: "3" }))).toBe(5);
  });

  it("throws a PoisonMessageError (a DeepqueueError) naming what is wrong", () => {
    const schema = z.object({ id: z.string() });
    expect(parseRecord(record({ body: '{"id":"a"}' }), schema)).toEqual({ id: "a" });
    expect(() => parseRecord(record({ body: "{not json" }), schema)).toThrow(/not JSON/);
    const error = (() => {
      try {
        parseRecord(record({ body: '{"id":1}' }), schema);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(PoisonMessageError);
    expect(error).toBeInstanceOf(DeepqueueError);
    expect((error as Error).message).toMatch(/^message m-1 is not a valid event: id:/);
  });
});
