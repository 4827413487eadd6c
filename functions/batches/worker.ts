import { type BatchControlMessage, LIMITS } from "../../events/index.ts";
import type { FileStore } from "../files/store.ts";
import { FAILURE_CODES } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { LineDispatcher } from "./dispatch.ts";
import type { BatchFinalizer } from "./finalize.ts";
import { type BatchLine, validateBatchFile } from "./jsonl.ts";
import type { BatchLines, PreparedLine } from "./lines.ts";
import type { BatchStore, StoredBatch } from "./store.ts";

/**
 * The batch worker's tunables (docs/openai.md#how-a-batch-runs).
 *
 * Why a window of lines per batch, and not the alternatives:
 * - Sending every line at once (ingest-style) would put a 50,000-line file in front of every
 *   later batch in the lane: SQS serves roughly in order, so a small batch would wait for all of it.
 * - A queue per tenant with weighted receives would need the batcher to know the tenants and
 *   poll many queues; a FIFO queue with message groups per batch would be fair, but the pipeline's
 *   queues are standard ones (and FIFO's throughput limits are per group).
 * - An in-memory scheduler in the batcher loses its order on a crash.
 * A window keeps at most `window` lines of a batch in the lane; as its lines finish, it is
 * topped up. So every open batch has about the same number of lines queued, and the lane
 * serves them in turn: batches progress at similar rates whatever their sizes. The cursor is
 * durable (the batch item), moved by a conditional update.
 */
export const BATCH_WORKER_DEFAULTS = {
  /** Most lines of one batch queued or running at once. */
  window: 200,
  /** Lines per prepared chunk (one S3 object, sent as one step). */
  chunkLines: 50,
  /** A batch that has not moved for this long is recounted from its records (a lost message). */
  stallMs: 5 * 60_000,
} as const;

export interface BatchWorkerOptions {
  batches: BatchStore;
  files: FileStore;
  lines: BatchLines;
  dispatcher: LineDispatcher;
  finalizer: BatchFinalizer;
  /** Prompt tokens of a line (the DeepSeek tokenizer, as ingest counts). */
  countTokens: (line: Pick<BatchLine, "prompt" | "messages">) => number;
  /** The model's context window (DEEPQUEUE_MAX_MODEL_LEN). */
  maxModelLen: number;
  logger: Logger;
  /** @default BATCH_WORKER_DEFAULTS.window */
  window?: number;
  /** @default BATCH_WORKER_DEFAULTS.chunkLines */
  chunkLines?: number;
  /** @default BATCH_WORKER_DEFAULTS.stallMs */
  stallMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/** True when nothing of the batch is left to send and every sent line has ended. */
export function allLinesEnded(batch: StoredBatch): boolean {
  return batch.cursor >= batch.chunks && batch.completed + batch.failed >= batch.dispatched;
}

/**
 * Runs batches from their control messages: validates a new batch's input file and prepares its
 * lines in chunks, keeps a window of lines in the batch lane, counts finished lines (one
 * `ADD` per batch per SQS batch of messages), ends the batch when every line has ended (or
 * when it expires, or once a cancelled batch's running lines have ended). Every step reads the
 * batch first and changes it conditionally, so a repeated message is harmless.
 */
export class BatchWorker {
  readonly #o: Required<Omit<BatchWorkerOptions, "now">> & { now: () => number };

  constructor(options: BatchWorkerOptions) {
    this.#o = { ...BATCH_WORKER_DEFAULTS, now: Date.now, ...options };
  }

  /** Handles a batch of control messages: counts per batch first, then one step per batch. */
  async handle(messages: readonly BatchControlMessage[]): Promise<void> {
    const byBatch = new Map<string, { completed: number; failed: number }>();
    for (const m of messages) {
      const counts = byBatch.get(m.batch_id) ?? { completed: 0, failed: 0 };
      if (m.type === "line_finished") counts[m.status] += 1;
      byBatch.set(m.batch_id, counts);
    }
    for (const [id, counts] of byBatch) {
      const counted =
        counts.completed + counts.failed > 0
          ? await this.#o.batches.count(id, counts.completed, counts.failed)
          : undefined;
      const batch = counted ?? (await this.#o.batches.load(id));
      if (batch) await this.step(batch);
    }
  }

  /** Moves one batch on as far as it can go now. */
  async step(batch: StoredBatch): Promise<void> {
    switch (batch.status) {
      case "validating":
        return this.#validate(batch);
      case "in_progress":
        return this.#run(batch);
      case "cancelling":
        if (allLinesEnded({ ...batch, chunks: batch.cursor }))
          await this.#o.finalizer.stop(batch, "cancelled");
        return;
      case "finalizing":
        // A worker died while finalizing: back to in_progress, and finish again.
        if (this.#stalled(batch)) {
          const back = await this.#o.batches.transition(batch.id, ["finalizing"], "in_progress");
          if (back) await this.#run(back);
        }
        return;
      default:
        return;
    }
  }

  async #run(start: StoredBatch): Promise<void> {
    let batch = start;
    if (this.#o.now() >= (batch.expires_at ?? Number.POSITIVE_INFINITY) * 1000) {
      await this.#o.finalizer.stop(batch, "expired");
      return;
    }
    batch = await this.#fill(batch);
    if (!allLinesEnded(batch) && batch.cursor >= batch.chunks && this.#stalled(batch)) {
      // Counts that stopped short (a line ended where no message was sent): read them back.
      const counted = await this.#o.finalizer.recount(batch);
      await this.#o.batches.recount(batch.id, counted.completed, counted.failed);
      batch = { ...batch, completed: counted.completed, failed: counted.failed };
    }
    if (allLinesEnded(batch)) await this.#o.finalizer.complete(batch);
  }

  /** Sends chunks while the batch has room in its window. */
  async #fill(start: StoredBatch): Promise<StoredBatch> {
    let batch = start;
    while (batch.cursor < batch.chunks) {
      const running = batch.dispatched - batch.completed - batch.failed;
      if (running > 0 && running + batch.chunk_lines > this.#o.window) break;
      const sent = await this.#o.dispatcher.send(batch, batch.cursor);
      if (!(await this.#o.batches.advance(batch.id, batch.cursor, sent.lines, sent.prefailed))) {
        // Another step sent this chunk meanwhile: continue from what is stored.
        const stored = await this.#o.batches.load(batch.id);
        if (stored?.status !== "in_progress") return stored ?? batch;
        batch = stored;
        continue;
      }
      batch = {
        ...batch,
        cursor: batch.cursor + 1,
        dispatched: batch.dispatched + sent.lines,
        failed: batch.failed + sent.prefailed,
      };
    }
    return batch;
  }

  async #validate(batch: StoredBatch): Promise<void> {
    const file = await this.#o.files.get(batch.tenant, batch.input_file_id);
    if (!file) {
      await this.#o.finalizer.fail(batch, [
        {
          code: "invalid_file",
          message: `no file ${batch.input_file_id}`,
          param: "input_file_id",
          line: null,
        },
      ]);
      return;
    }
    const { lines, errors } = validateBatchFile(
      (await this.#o.files.content(file)).toString("utf8"),
      batch.endpoint,
    );
    if (errors.length > 0) {
      await this.#o.finalizer.fail(batch, errors);
      return;
    }
    const chunks: PreparedLine[][] = [];
    for (let i = 0; i < lines.length; i += this.#o.chunkLines) {
      chunks.push(lines.slice(i, i + this.#o.chunkLines).map((line) => this.#prepare(line)));
    }
    await this.#o.lines.writeChunks(batch.id, chunks);
    const started = await this.#o.batches.transition(batch.id, ["validating"], "in_progress", {
      in_progress_at: Math.floor(this.#o.now() / 1000),
      total: lines.length,
      chunks: chunks.length,
      chunk_lines: this.#o.chunkLines,
    });
    this.#o.logger.info({ batch_id: batch.id, tenant: batch.tenant, lines: lines.length }, "batch validated");
    // Not started: it was cancelled meanwhile; the next step ends it.
    const next = started ?? (await this.#o.batches.load(batch.id));
    if (next && next.status !== "validating") await this.step(next);
  }

  /** A line with its prompt's tokens; one that cannot fit the context window is rejected here. */
  #prepare(line: BatchLine): PreparedLine {
    const promptTokens = this.#o.countTokens(line);
    const window = this.#o.maxModelLen;
    if (promptTokens + line.max_tokens <= window && line.max_tokens <= LIMITS.maxTokens) {
      return { ...line, prompt_tokens: promptTokens };
    }
    return {
      ...line,
      prompt_tokens: promptTokens,
      reject: {
        code: FAILURE_CODES.contextLengthExceeded,
        message: `the prompt is ${promptTokens} tokens and max_tokens ${line.max_tokens}: together they must fit the model's ${window}-token context window${line.max_tokens > LIMITS.maxTokens ? ` (and max_tokens at most ${LIMITS.maxTokens})` : ""}`,
      },
    };
  }

  #stalled(batch: StoredBatch): boolean {
    return this.#o.now() - (batch.updated_ms ?? 0) >= this.#o.stallMs;
  }
}
