import { DeleteQueueCommand, ListQueueTagsCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ReplyMessage } from "../../events/index.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { createLogger } from "../shared/logger.ts";
import { REPLY_HEARTBEAT_TAG } from "./config.ts";
import { ReplyQueue } from "./reply-queue.ts";

const logger = createLogger({ level: "silent" });
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ bootstrap: false });
});
afterAll(() => stack.stop());

const record = {
  id: "req_1",
  status: "completed" as const,
  model: "m",
  created_at: "2026-11-28T09:00:00.000Z",
};

describe("ReplyQueue against fauxqs", () => {
  it("refreshes its heartbeat tag while it lives", async () => {
    let now = 1_000_000_000_000;
    const replies = new ReplyQueue({
      sqs: stack.sqs,
      prefix: stack.prefix,
      logger,
      heartbeatMs: 20,
      waitTimeSeconds: 1,
      now: () => now,
    });
    const url = await replies.url();
    const heartbeat = async () =>
      (await stack.sqs.send(new ListQueueTagsCommand({ QueueUrl: url }))).Tags?.[REPLY_HEARTBEAT_TAG];
    expect(await heartbeat()).toBe("1000000000");
    now += 90_000;
    await expect.poll(heartbeat, { timeout: 5000 }).toBe("1000000090");
    await replies.close();
  });

  it("drops a malformed message and goes on; made again when its queue is removed under it", async () => {
    const replies = new ReplyQueue({
      sqs: stack.sqs,
      prefix: stack.prefix,
      logger,
      replicaId: "again",
      waitTimeSeconds: 1,
      retryBaseMs: 10,
    });
    const url = await replies.url();
    const got: ReplyMessage[] = [];
    replies.subscribe("req_1", (m) => got.push(m));
    const send = (body: string) =>
      stack.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: body }));
    await send("{not json");
    await send(JSON.stringify({ type: "delta", request_id: "req_1", seq: "zero", text: "x" }));
    await send(JSON.stringify({ type: "delta", request_id: "req_1", seq: 0, text: "ok" }));
    await expect.poll(() => got.length, { timeout: 5000 }).toBe(1);
    expect(got[0]).toMatchObject({ type: "delta", text: "ok" });

    // The reconciler (or an operator) removed it: the loop makes it again, under the same URL.
    await stack.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    await expect
      .poll(
        async () => {
          await send(JSON.stringify({ type: "done", request_id: "req_1", record })).catch(() => undefined);
          return got.some((m) => m.type === "done");
        },
        { timeout: 10_000, interval: 200 },
      )
      .toBe(true);
    expect(await replies.url()).toBe(url);
    await replies.close();
  });
});
