import { once } from "node:events";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import type { AcceptedRequest, Result } from "../../events/index.ts";
import { newRequestId } from "../../functions/shared/ids.ts";
import { deliveryEvent } from "../../functions/shared/results.ts";
import type { RequestStore, StoredRequest } from "../../functions/shared/stores/requests.ts";

/** One request a receiver got. */
export interface ReceivedCallback {
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A webhook receiver on 127.0.0.1 (real HTTP). `answers` is the status (and
 * headers) of each call in turn; the last one repeats. "hang" never answers.
 */
export async function startReceiver(
  answers: Array<number | "hang" | { status: number; headers: Record<string, string> }>,
) {
  const calls: ReceivedCallback[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      calls.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      const answer = answers[Math.min(calls.length, answers.length) - 1] ?? 200;
      if (answer === "hang") return;
      const { status, headers } = typeof answer === "number" ? { status: answer, headers: {} } : answer;
      res.writeHead(status, headers).end("ok");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/deepqueue`,
    port,
    calls,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A stored, accepted request (queued) for `tenant`. */
export async function createRequest(
  requests: RequestStore,
  tenant: string,
  options: {
    callbackUrl?: string;
    deadlineMs?: number;
    id?: string;
    reply?: AcceptedRequest["reply"];
    batch?: AcceptedRequest["batch"];
  } = {},
): Promise<StoredRequest> {
  const now = Date.now();
  const accepted: AcceptedRequest = {
    id: options.id ?? newRequestId(),
    tenant,
    model: "deepseek-chat",
    prompt: "What is a queue?",
    max_tokens: 64,
    temperature: 0,
    cache: true,
    prompt_tokens: 5,
    created_at: new Date(now).toISOString(),
    deadline_at: new Date(now + (options.deadlineMs ?? 900_000)).toISOString(),
    callback_url: options.callbackUrl,
    reply: options.reply,
    ...(options.batch ? { batch: options.batch, lane: "batch" as const } : {}),
  };
  return requests.create(accepted, {
    ...(options.callbackUrl ? { delivery: { status: "pending", attempts: 0 } } : {}),
  });
}

export const ANSWER: Result = {
  text: "A queue holds messages until a consumer takes them.",
  finish_reason: "stop",
  usage: { prompt_tokens: 5, completion_tokens: 11 },
  source: "model",
};

/** Creates, completes and sends a request's delivery message, as the batcher does. */
export async function completeAndSend(
  deps: { sqs: SQSClient; requests: RequestStore; deliveryQueueUrl: string },
  tenant: string,
  options: { callbackUrl?: string; result?: Result } = {},
): Promise<StoredRequest> {
  const created = await createRequest(deps.requests, tenant, options);
  const { record } = await deps.requests.complete(created.id, options.result ?? ANSWER);
  await deps.sqs.send(
    new SendMessageCommand({
      QueueUrl: deps.deliveryQueueUrl,
      MessageBody: JSON.stringify(deliveryEvent(record)),
    }),
  );
  return record;
}

/** Receives (and deletes) everything visible on a queue now. */
export async function drain(sqs: SQSClient, queueUrl: string): Promise<Message[]> {
  const messages: Message[] = [];
  for (let empty = 0; empty < 2; ) {
    const out = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    const got = out.Messages ?? [];
    if (got.length === 0) {
      empty += 1;
      continue;
    }
    messages.push(...got);
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: got.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }
  return messages;
}

/** An SQS event as Lambda (and the worker runtime) hands it to a handler. */
export function sqsEvent(messages: Message[], queueArn = "arn:aws:sqs:us-east-1:000000000000:q"): SQSEvent {
  return {
    Records: messages.map((m) => ({
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body ?? "",
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: String(Date.now()),
        SenderId: "test",
        ApproximateFirstReceiveTimestamp: String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? "",
      eventSource: "aws:sqs",
      eventSourceARN: queueArn,
      awsRegion: "us-east-1",
    })),
  };
}

type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

/**
 * Runs `handler` off a real queue like the worker runtime: receive, hand the
 * batch over, delete what did not fail. Stops when `until()` holds or after
 * `maxRounds` receives.
 */
export async function pump(
  sqs: SQSClient,
  queueUrl: string,
  handler: SqsHandler,
  until: () => boolean | Promise<boolean>,
  maxRounds = 60,
): Promise<number> {
  let handled = 0;
  for (let round = 0; round < maxRounds && !(await until()); round++) {
    const out = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) continue;
    const response = await handler(sqsEvent(messages), {} as Context);
    const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
    const done = messages.filter((m) => !failed.has(m.MessageId!));
    handled += done.length;
    if (done.length) {
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
  }
  return handled;
}
