import { CreateQueueCommand, ListQueuesCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { REPLY_HEARTBEAT_TAG, replyQueueName } from "../openai/config.ts";
import { ReplyQueue } from "../openai/reply-queue.ts";
import { createLogger } from "../shared/logger.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { runReconcilerOnce } from "./reconciler.ts";

const logger = createLogger({ level: "silent" });
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack.stop());

async function names(prefix: string): Promise<string[]> {
  const out = await stack.sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix }));
  return (out.QueueUrls ?? []).map((url) => url.split("/").at(-1)!).sort();
}

describe("the reconciler removes orphaned reply queues", () => {
  it("deletes a reply queue whose heartbeat is stale, keeps a live replica's and any queue not tagged as a reply queue", async () => {
    const hourAgo = String(Math.floor(Date.now() / 1000) - 3600);
    // A replica that died an hour ago without deleting its queue.
    await stack.sqs.send(
      new CreateQueueCommand({
        QueueName: replyQueueName(stack.prefix, "dead"),
        tags: { [REPLY_HEARTBEAT_TAG]: hourAgo, "deepqueue:role": "reply" },
      }),
    );
    // Another deployment whose prefix starts with ours + "-reply-": never touched.
    await stack.sqs.send(new CreateQueueCommand({ QueueName: replyQueueName(stack.prefix, "x-requests") }));
    // A live replica: its queue made through ReplyQueue, heartbeat fresh.
    const live = new ReplyQueue({
      sqs: stack.sqs,
      prefix: stack.prefix,
      logger,
      replicaId: "live",
      waitTimeSeconds: 1,
    });
    await live.url();
    expect(await names(replyQueueName(stack.prefix, ""))).toHaveLength(3);

    await runReconcilerOnce({
      sqs: stack.sqs,
      requests: new DynamoRequestStore(stack.ddb, stack.prefix),
      prefix: stack.prefix,
      logger,
      graceMs: 0,
    });
    expect(await names(replyQueueName(stack.prefix, ""))).toEqual([
      replyQueueName(stack.prefix, "live"),
      replyQueueName(stack.prefix, "x-requests"),
    ]);

    await live.close();
    expect(await names(replyQueueName(stack.prefix, ""))).toEqual([
      replyQueueName(stack.prefix, "x-requests"),
    ]);
  });
});
