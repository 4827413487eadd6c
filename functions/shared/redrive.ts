/**
 * Moving a dead-letter queue's messages back to their source queue: shared by
 * `deepqueue redrive` and the dashboard's redrive button.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListMessageMoveTasksCommand,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
  StartMessageMoveTaskCommand,
} from "@aws-sdk/client-sqs";
import { DeepqueueError } from "./errors.ts";
import { DLQ_SUFFIX, dlqName, PIPELINE_QUEUES, type PipelineQueue, queueName } from "./names.ts";

/** A queue name `deepqueue redrive` does not know. */
export class UnknownQueueError extends DeepqueueError {
  constructor(queue: string, prefix: string) {
    super(
      `unknown queue "${queue}": use ${PIPELINE_QUEUES.join(", ")}, results-<tenant>, or a full name starting with "${prefix}-"`,
    );
    this.name = "UnknownQueueError";
  }
}

/** SQS's move task ended failed or cancelled. */
export class MoveTaskFailedError extends DeepqueueError {
  constructor(status: string, reason: string | undefined) {
    super(`the move task ${status.toLowerCase()}: ${reason ?? "no reason given"}`);
    this.name = "MoveTaskFailedError";
  }
}

/** Redrive tunables. */
export const REDRIVE_DEFAULTS = {
  /** Messages per second moved back: slow enough not to flood the workers that read the queue. */
  rate: 10,
  /** How often a move task's progress is checked. */
  pollMs: 1000,
} as const;

/**
 * The source queue `deepqueue redrive <queue>` means: `requests`,
 * `inference`, `delivery`, `results-<tenant>`, any of those with `-dlq`, or a
 * full queue name.
 *
 * @example redriveSource("deepqueue", "results-acme") // "deepqueue-results-acme"
 */
export function redriveSource(prefix: string, queue: string): string {
  const name = queue.endsWith(DLQ_SUFFIX) ? queue.slice(0, -DLQ_SUFFIX.length) : queue;
  if ((PIPELINE_QUEUES as readonly string[]).includes(name)) return queueName(prefix, name as PipelineQueue);
  if (/^results-[a-z0-9-]+$/.test(name)) return `${prefix}-${name}`;
  if (name.startsWith(`${prefix}-`)) return name;
  throw new UnknownQueueError(queue, prefix);
}

export interface RedriveReport {
  source: string;
  dlq: string;
  moved: number;
  /** `move-task`: SQS's own StartMessageMoveTask; `receive-send-delete`: the fallback (emulators, --max). */
  method: "move-task" | "receive-send-delete";
}

async function arnOf(sqs: SQSClient, url: string): Promise<string> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }));
  return out.Attributes!.QueueArn!;
}

function unsupported(error: unknown): boolean {
  const e = error as { name?: string; message?: string; Code?: string };
  return /InvalidAction|UnsupportedOperation|UnknownOperation|NotImplemented|Unknown action/i.test(
    `${e?.name} ${e?.Code} ${e?.message}`,
  );
}

export interface RedriveOptions {
  sqs: SQSClient;
  prefix: string;
  queue: string;
  /** Messages per second. @default REDRIVE_DEFAULTS.rate */
  rate?: number;
  /** Move at most this many (then always receive-send-delete). */
  max?: number;
  signal?: AbortSignal;
  /** @default REDRIVE_DEFAULTS.pollMs */
  pollMs?: number;
}

/**
 * Moves a DLQ's messages back to its source queue, at most `rate` per
 * second. Prefers SQS's StartMessageMoveTask (server-side, resumable); where
 * the endpoint lacks it (fauxqs) or `max` is set, each message is sent to the
 * source and only then deleted from the DLQ, so a crash repeats at most one
 * message, which the idempotent pipeline absorbs. Safe to run again.
 *
 * @example const report = await redrive({ sqs, prefix: "deepqueue", queue: "delivery", rate: 10 });
 */
export async function redrive(options: RedriveOptions): Promise<RedriveReport> {
  const { sqs } = options;
  const rate = options.rate ?? REDRIVE_DEFAULTS.rate;
  const source = redriveSource(options.prefix, options.queue);
  const dlq = dlqName(source);
  const sourceUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: source }))).QueueUrl!;
  const dlqUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: dlq }))).QueueUrl!;
  if (options.max === undefined) {
    try {
      return {
        source,
        dlq,
        moved: await moveTask(sqs, sourceUrl, dlqUrl, rate, options),
        method: "move-task",
      };
    } catch (error) {
      if (!unsupported(error)) throw error;
    }
  }
  const moved = await copyBack(sqs, sourceUrl, dlqUrl, rate, options);
  return { source, dlq, moved, method: "receive-send-delete" };
}

/** Receive from the DLQ, send to the source, then delete: paced at `rate` a second. */
async function copyBack(
  sqs: SQSClient,
  sourceUrl: string,
  dlqUrl: string,
  rate: number,
  options: Pick<RedriveOptions, "max" | "signal">,
): Promise<number> {
  let moved = 0;
  const started = Date.now();
  while (!options.signal?.aborted && (options.max === undefined || moved < options.max)) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: dlqUrl,
        MaxNumberOfMessages: Math.min(10, Math.max(1, Math.ceil(rate)), (options.max ?? 10) - moved),
        WaitTimeSeconds: 1,
        VisibilityTimeout: 60,
        MessageAttributeNames: ["All"],
      }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) break;
    for (const message of messages) {
      if (options.signal?.aborted) break;
      // Token pacing: message n may go at started + n / rate seconds.
      const due = started + (moved * 1000) / rate - Date.now();
      if (due > 0) await sleep(due);
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: sourceUrl,
          MessageBody: message.Body ?? "",
          MessageAttributes: message.MessageAttributes && keepAttributes(message.MessageAttributes),
        }),
      );
      await sqs.send(new DeleteMessageCommand({ QueueUrl: dlqUrl, ReceiptHandle: message.ReceiptHandle! }));
      moved += 1;
    }
  }
  return moved;
}

function keepAttributes(
  attributes: Record<string, MessageAttributeValue>,
): Record<string, MessageAttributeValue> {
  return Object.fromEntries(
    Object.entries(attributes).map(([k, v]) => [
      k,
      // The SDK leaves undefined values out of the request.
      { DataType: v.DataType!, StringValue: v.StringValue, BinaryValue: v.BinaryValue },
    ]),
  );
}

async function moveTask(
  sqs: SQSClient,
  sourceUrl: string,
  dlqUrl: string,
  rate: number,
  options: { signal?: AbortSignal; pollMs?: number },
): Promise<number> {
  const dlqArn = await arnOf(sqs, dlqUrl);
  // https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html
  await sqs.send(
    new StartMessageMoveTaskCommand({
      SourceArn: dlqArn,
      DestinationArn: await arnOf(sqs, sourceUrl),
      MaxNumberOfMessagesPerSecond: Math.max(1, Math.floor(rate)),
    }),
  );
  for (;;) {
    const out = await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: dlqArn, MaxResults: 1 }));
    const task = out.Results?.[0];
    if (!task || task.Status === "COMPLETED") return task?.ApproximateNumberOfMessagesMoved ?? 0;
    if (task.Status === "FAILED" || task.Status === "CANCELLED") {
      throw new MoveTaskFailedError(task.Status, task.FailureReason);
    }
    if (options.signal?.aborted) return task.ApproximateNumberOfMessagesMoved ?? 0;
    await sleep(options.pollMs ?? REDRIVE_DEFAULTS.pollMs, undefined, { signal: options.signal }).catch(
      () => undefined,
    );
  }
}
