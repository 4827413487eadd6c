import type { SQSClient } from "@aws-sdk/client-sqs";
import { type DynamoDBDocumentClient, ScanCommand } from "@aws-sdk/lib-dynamodb";
import type { BatchControlMessage } from "../../events/index.ts";
import { queueName, tableName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import { BatchSender } from "../shared/sqs-records.ts";
import { BATCH_WORKER_DEFAULTS } from "./worker.ts";

export interface BatchSweeperOptions {
  ddb: DynamoDBDocumentClient;
  prefix: string;
  /** Sends a control message to `<prefix>-batches`. */
  control: (message: BatchControlMessage) => Promise<void>;
  /** @default BATCH_WORKER_DEFAULTS.stallMs */
  stallMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Looks again at open batches that nothing will move: one past its window (it must expire even
 * when no line finishes any more), or one that has not changed for `stallMs` (a control message
 * was lost, or a line ended where no message was sent). It only sends `advance` messages: the
 * worker decides. Run by the reconciler on its schedule. The batches table is small (one item per
 * batch, retained 30 days), so a filtered Scan is enough.
 *
 * @example await new BatchSweeper({ ddb, prefix, control }).sweep(); // batches nudged
 */
export class BatchSweeper {
  readonly #o: Required<BatchSweeperOptions>;

  constructor(options: BatchSweeperOptions) {
    this.#o = { stallMs: BATCH_WORKER_DEFAULTS.stallMs, now: Date.now, ...options };
  }

  async sweep(): Promise<number> {
    const now = this.#o.now();
    let nudged = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.#o.ddb.send(
        new ScanCommand({
          TableName: tableName(this.#o.prefix, "batches"),
          FilterExpression: "#s IN (:v, :p, :f, :c)",
          ExpressionAttributeNames: { "#s": "status" },
          ExpressionAttributeValues: {
            ":v": "validating",
            ":p": "in_progress",
            ":f": "finalizing",
            ":c": "cancelling",
          },
          ProjectionExpression: "pk, expires_at, updated_ms",
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of out.Items ?? []) {
        const expired = now >= Number(item.expires_at ?? Number.POSITIVE_INFINITY) * 1000;
        const stalled = now - Number(item.updated_ms ?? 0) >= this.#o.stallMs;
        if (!expired && !stalled) continue;
        await this.#o.control({ type: "advance", batch_id: String(item.pk) });
        nudged += 1;
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return nudged;
  }
}

/**
 * The reconciler's batch sweep: a BatchSweeper sending to `<prefix>-batches`.
 *
 * @example const sweep = batchSweepFromEnv(env, { sqs, ddb }); await sweep();
 */
export function batchSweepFromEnv(
  env: { DEEPQUEUE_PREFIX: string },
  clients: { sqs: SQSClient; ddb: DynamoDBDocumentClient },
): () => Promise<number> {
  const sender = new BatchSender(clients.sqs, () =>
    new QueueUrls(clients.sqs).get(queueName(env.DEEPQUEUE_PREFIX, "batches")),
  );
  const sweeper = new BatchSweeper({
    ddb: clients.ddb,
    prefix: env.DEEPQUEUE_PREFIX,
    control: (message) => sender.send(message),
  });
  return () => sweeper.sweep();
}
