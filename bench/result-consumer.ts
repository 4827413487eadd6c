import { setTimeout as sleep } from "node:timers/promises";
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { BenchError } from "./errors.ts";

/** Long-polls a tenant result queue with a few loops, deleting as it goes; resolves waiters by request id. */
export function resultConsumer(sqs: SQSClient, queueUrl: string) {
  const seen = new Set<string>();
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      let messages: Message[] = [];
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
        );
        messages = out.Messages ?? [];
      } catch {
        continue;
      }
      if (!messages.length) continue;
      for (const m of messages) seen.add((JSON.parse(m.Body ?? "{}") as { subject?: string }).subject ?? "");
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
  });
  return {
    async waitAll(ids: string[], timeoutMs: number) {
      const end = Date.now() + timeoutMs;
      while (!ids.every((id) => seen.has(id))) {
        if (Date.now() > end)
          throw new BenchError(
            `${ids.filter((id) => !seen.has(id)).length} results missing after ${timeoutMs} ms`,
          );
        await sleep(5);
      }
    },
    stop() {
      running = false;
      return Promise.allSettled(loops);
    },
  };
}

export type ResultConsumer = ReturnType<typeof resultConsumer>;
