import {
  DeleteQueueCommand,
  ListQueuesCommand,
  ListQueueTagsCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { REPLY_HEARTBEAT_TAG, replyQueueName } from "../openai/config.ts";
import type { Logger } from "../shared/logger.ts";
import { counter } from "../shared/metrics.ts";

/** A reply queue whose heartbeat is older than this belongs to an ingest replica that is gone. */
export const REPLY_QUEUE_STALE_MS = 10 * 60_000;

const removed = counter(
  "deepqueue_reply_queues_removed_total",
  "Reply queues of ingest replicas that went away without deleting theirs, removed by the reconciler",
);

export interface ReplyQueueSweepDeps {
  sqs: SQSClient;
  prefix: string;
  logger: Logger;
  now?: () => number;
  /** @default REPLY_QUEUE_STALE_MS */
  staleMs?: number;
}

async function listReplyQueues(sqs: SQSClient, prefix: string): Promise<string[]> {
  const urls: string[] = [];
  let NextToken: string | undefined;
  do {
    const page = await sqs.send(
      new ListQueuesCommand({ QueueNamePrefix: replyQueueName(prefix, ""), MaxResults: 1000, NextToken }),
    );
    urls.push(...(page.QueueUrls ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return urls;
}

/** Whether the queue at `url` is a reply queue (its role tag) whose heartbeat is stale. */
async function isOrphan(sqs: SQSClient, url: string, staleBefore: number): Promise<boolean> {
  const { Tags: tags = {} } = await sqs.send(new ListQueueTagsCommand({ QueueUrl: url }));
  // Only queues that say they are reply queues: another deployment's prefix may start with ours.
  if (tags["deepqueue:role"] !== "reply") return false;
  const heartbeat = Number(tags[REPLY_HEARTBEAT_TAG]);
  return !Number.isFinite(heartbeat) || heartbeat * 1000 < staleBefore;
}

/**
 * Removes the reply queues (`<prefix>-reply-<replica>`, functions/openai/reply-queue.ts) of ingest
 * replicas that went away without `close()` (a crash, a killed pod): their heartbeat tag, refreshed
 * every minute while the replica lives, is older than `staleMs`. Failures are logged and left for
 * the next run: the reconciler's own work goes on.
 *
 * @example const gone = await removeOrphanReplyQueues({ sqs, prefix: "deepqueue", logger });
 */
export async function removeOrphanReplyQueues(deps: ReplyQueueSweepDeps): Promise<string[]> {
  const staleBefore = (deps.now ?? Date.now)() - (deps.staleMs ?? REPLY_QUEUE_STALE_MS);
  const gone: string[] = [];
  try {
    for (const url of await listReplyQueues(deps.sqs, deps.prefix)) {
      if (!(await isOrphan(deps.sqs, url, staleBefore))) continue;
      await deps.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
      removed.inc();
      gone.push(url);
      deps.logger.info({ queue: url }, "orphaned reply queue removed");
    }
  } catch (error) {
    deps.logger.warn({ err: error }, "could not sweep reply queues; the next run tries again");
  }
  return gone;
}
