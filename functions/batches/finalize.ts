import type { SQSClient } from "@aws-sdk/client-sqs";
import pLimit from "p-limit";
import { type BatchStatus, type BatchUsage, buildEvent, EVENT_TYPES } from "../../events/index.ts";
import type { FileStore } from "../files/store.ts";
import { OUTPUT_FILE_RETENTION_SECONDS } from "../files/store.ts";
import { newFileId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import { resultQueueName } from "../shared/names.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { BatchSender } from "../shared/sqs-records.ts";
import { type BatchLines, lineRequestId } from "./lines.ts";
import { type LineRecord, outputLine } from "./output.ts";
import { type BatchChanges, type BatchStore, type StoredBatch, toBatchObject } from "./store.ts";

/** How a batch ends, the statuses it may end from, and the timestamp that says when. */
const ENDINGS = {
  completed: { from: ["finalizing"], at: "completed_at", event: EVENT_TYPES.batchCompleted },
  expired: { from: ["in_progress", "finalizing"], at: "expired_at", event: EVENT_TYPES.batchExpired },
  cancelled: { from: ["cancelling"], at: "cancelled_at", event: EVENT_TYPES.batchCancelled },
  failed: { from: ["validating"], at: "failed_at", event: EVENT_TYPES.batchFailed },
} as const satisfies Record<string, { from: readonly BatchStatus[]; at: keyof BatchChanges; event: string }>;
export type BatchEnding = keyof typeof ENDINGS;

const UNFINISHED = {
  expired: {
    code: "batch_expired",
    message: "This request could not be executed before the completion window expired.",
  },
  cancelled: { code: "batch_cancelled", message: "This request was not executed: the batch was cancelled." },
} as const;

/** Chunks read at once while a batch is collected. */
const COLLECT_CONCURRENCY = 8;

/** The output and error files' lines of a batch, and its counts read from the line records. */
interface Collected {
  output: string[];
  errors: string[];
  completed: number;
  failed: number;
  /** Sent lines whose request has not ended yet. */
  running: number;
  /** The tokens of the lines that ended, summed (the batch object's `usage`). */
  usage: BatchUsage;
  /** The model of the first line that has a record (the line's own, or the default it was given). */
  model?: string;
}

/** A batch's usage before any line is counted. */
function noUsage(): BatchUsage {
  return {
    input_tokens: 0,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 0,
    // The model reports no reasoning tokens apart from the answer's: always 0.
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 0,
  };
}

/**
 * Adds an ended line's tokens: a completed line's result usage, a failed one's only when it has
 * a result (a failure without a model call counts nothing). Prompt tokens answered from the
 * response cache are also `cached_tokens` (batch lines skip the cache, so this is usually 0).
 */
function addUsage(usage: BatchUsage, record: LineRecord | undefined): void {
  if (!record?.result || (record.status !== "completed" && record.status !== "failed")) return;
  const { prompt_tokens, completion_tokens } = record.result.usage;
  usage.input_tokens += prompt_tokens;
  usage.output_tokens += completion_tokens;
  usage.total_tokens += prompt_tokens + completion_tokens;
  if (record.result.source === "cache") usage.input_tokens_details.cached_tokens += prompt_tokens;
}

export interface BatchFinalizerDeps {
  batches: BatchStore;
  files: FileStore;
  lines: BatchLines;
  sqs: SQSClient;
  queueUrls: QueueUrls;
  prefix: string;
  logger: Logger;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Ends batches: writes the output file (completed lines, OpenAI's response bodies) and the error
 * file (failed lines; with `expired` or `cancelled`, also the lines that never ran), sets the final
 * status with its timestamp, counts and file ids, and puts a `deepqueue.batch.<status>` event on
 * the tenant's result queue. The event id is derived from the batch and its status, so a repeated
 * step emits a duplicate consumers drop.
 */
export class BatchFinalizer {
  readonly #deps: BatchFinalizerDeps;
  readonly #now: () => number;
  readonly #senders = new Map<string, BatchSender>();

  constructor(deps: BatchFinalizerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /**
   * All lines are counted: moves to `finalizing`, checks the records, ends `completed`. When a
   * record is still running (a duplicate message made the counts run ahead), the counts are
   * repaired from the records and the batch goes back to `in_progress`.
   */
  async complete(batch: StoredBatch): Promise<StoredBatch | undefined> {
    const finalizing = await this.#deps.batches.transition(batch.id, ["in_progress"], "finalizing", {
      finalizing_at: this.#seconds(),
    });
    if (!finalizing) return undefined;
    const collected = await this.#collect(finalizing, "expired");
    if (collected.running > 0) {
      await this.#deps.batches.recount(batch.id, collected.completed, collected.failed);
      return this.#deps.batches.transition(batch.id, ["finalizing"], "in_progress");
    }
    return this.#end(finalizing, "completed", collected);
  }

  /** Ends the batch `expired` (past its window) or `cancelled` with what finished so far. */
  async stop(batch: StoredBatch, ending: "expired" | "cancelled"): Promise<StoredBatch | undefined> {
    return this.#end(batch, ending, await this.#collect(batch, ending));
  }

  /** Ends a batch whose input file is not valid: `failed`, with OpenAI's `errors` list. */
  async fail(
    batch: StoredBatch,
    errors: NonNullable<StoredBatch["errors"]>,
  ): Promise<StoredBatch | undefined> {
    const ended = await this.#deps.batches.transition(batch.id, ENDINGS.failed.from, "failed", {
      failed_at: this.#seconds(),
      errors,
    });
    if (ended) await this.#publish(ended, ENDINGS.failed.event);
    return ended;
  }

  /** Counts the lines the batch would still report (for the sweep's repair). */
  async recount(batch: StoredBatch): Promise<Collected> {
    return this.#collect(batch, "expired");
  }

  async #end(batch: StoredBatch, ending: Exclude<BatchEnding, "failed">, collected: Collected) {
    const spec = ENDINGS[ending];
    const [output, errors] = await Promise.all([
      this.#writeFile(batch, "output", collected.output),
      this.#writeFile(batch, "error", collected.errors),
    ]);
    const ended = await this.#deps.batches.transition(batch.id, spec.from, ending, {
      [spec.at]: this.#seconds(),
      completed: collected.completed,
      failed: collected.failed,
      usage: collected.usage,
      ...(collected.model ? { model: collected.model } : {}),
      ...(output ? { output_file_id: output } : {}),
      ...(errors ? { error_file_id: errors } : {}),
    });
    if (!ended) {
      // Another worker ended it first: the files written here are not the batch's.
      await Promise.all(
        [output, errors].filter(Boolean).map((id) => this.#deps.files.delete(batch.tenant, id!)),
      );
      return undefined;
    }
    await this.#publish(ended, spec.event);
    await this.#deps.lines
      .deleteChunks(batch.id, batch.chunks)
      .catch((e) =>
        this.#deps.logger.warn({ err: e, batch_id: batch.id }, "could not remove the batch's chunks"),
      );
    this.#deps.logger.info(
      {
        batch_id: batch.id,
        tenant: batch.tenant,
        status: ending,
        completed: collected.completed,
        failed: collected.failed,
      },
      "batch ended",
    );
    return ended;
  }

  /** Reads every chunk and the records of its sent lines; lines never sent are unfinished. */
  async #collect(batch: StoredBatch, ending: "expired" | "cancelled"): Promise<Collected> {
    const collected: Collected = {
      output: [],
      errors: [],
      completed: 0,
      failed: 0,
      running: 0,
      usage: noUsage(),
    };
    // Chunks are read a few at a time (an S3 GET and a BatchGetItem each), and used in order.
    const limit = pLimit(COLLECT_CONCURRENCY);
    const chunks = await Promise.all(
      Array.from({ length: batch.chunks }, (_, n) =>
        limit(async () => {
          const lines = await this.#deps.lines.readChunk(batch.id, n);
          const ids = lines.map((l) => lineRequestId(batch.id, l.line));
          const records =
            n < batch.cursor ? await this.#deps.lines.records(ids) : new Map<string, LineRecord>();
          return { lines, ids, records };
        }),
      ),
    );
    for (const { lines, ids, records } of chunks) {
      lines.forEach((line, i) => {
        const record = records.get(ids[i]!);
        if (record?.status === "completed") collected.completed += 1;
        else if (record?.status === "failed") collected.failed += 1;
        else if (record) collected.running += 1;
        addUsage(collected.usage, record);
        collected.model ??= record?.model;
        const { file, line: out } = outputLine(
          line.custom_id,
          ids[i]!,
          record,
          batch.endpoint,
          UNFINISHED[ending],
        );
        (file === "output" ? collected.output : collected.errors).push(JSON.stringify(out));
      });
    }
    return collected;
  }

  async #writeFile(
    batch: StoredBatch,
    kind: "output" | "error",
    lines: string[],
  ): Promise<string | undefined> {
    if (lines.length === 0) return undefined;
    const now = this.#seconds();
    const stored = await this.#deps.files.put(
      {
        id: newFileId(),
        tenant: batch.tenant,
        filename: `${batch.id}_${kind}.jsonl`,
        purpose: "batch_output",
        created_at: now,
        // OpenAI anchors output_expires_after at the file's creation, not the batch's.
        expires_at: now + (batch.output_expires_after?.seconds ?? OUTPUT_FILE_RETENTION_SECONDS),
      },
      `${lines.join("\n")}\n`,
    );
    return stored.id;
  }

  async #publish(batch: StoredBatch, type: (typeof ENDINGS)[BatchEnding]["event"]): Promise<void> {
    const queue = resultQueueName(this.#deps.prefix, batch.tenant);
    let sender = this.#senders.get(queue);
    if (!sender) {
      sender = new BatchSender(this.#deps.sqs, () => this.#deps.queueUrls.get(queue));
      this.#senders.set(queue, sender);
    }
    await sender.send(
      buildEvent({
        id: `evt_${batch.id}_${batch.status}`,
        type,
        subject: batch.id,
        data: toBatchObject(batch),
      }),
    );
  }

  #seconds(): number {
    return Math.floor(this.#now() / 1000);
  }
}
