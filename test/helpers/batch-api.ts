import OpenAI from "openai";
import { batchesDepsFromEnv } from "../../functions/batches/deps.ts";
import { createBatchesHandler } from "../../functions/batches/handler.ts";
import { BatchSweeper } from "../../functions/batches/sweep.ts";
import { createIngestFromEnv } from "../../functions/ingest/handler.ts";
import { type HttpServerHandle, serveHttp } from "../../functions/runtime/http.ts";
import { createSqsWorker, type SqsHandler, type SqsWorker } from "../../functions/runtime/sqs-worker.ts";
import { createLogger } from "../../functions/shared/logger.ts";
import { queueName } from "../../functions/shared/names.ts";
import { provisionTenant } from "../../functions/shared/provision.ts";
import { type Pipeline, type PipelineOptions, startPipeline } from "./pipeline.ts";

const silent = createLogger({ level: "silent" });

export interface BatchStackOptions extends PipelineOptions {
  /** Batch variables (DEEPQUEUE_BATCH_WINDOW, DEEPQUEUE_BATCH_WINDOW_SECONDS, …). */
  env?: Record<string, string>;
  /** Lines the batch lane may serve at first (`allowLines` adds more). @default Infinity */
  laneBudget?: number;
}

export interface BatchStack {
  pipeline: Pipeline;
  ingest: HttpServerHandle;
  /** The batch worker on `<prefix>-batches`. */
  batches: SqsWorker;
  /** A worker of the batcher's handler on `<prefix>-inference-batch` (the batch lane). */
  lane: SqsWorker;
  /** Lets `n` more lines through the batch lane (held lines wait, invisible, until then). */
  allowLines(n: number): void;
  /** Moves the batch worker's and the sweep's clock forward (expiry). */
  advanceClock(ms: number): void;
  /** The reconciler's batch sweep, on the shifted clock. */
  sweep(): Promise<number>;
  /** A tenant and the official OpenAI client pointed at ingest with its API key. */
  tenant(name: string, quota?: { dailyRequests?: number | null }): Promise<OpenAI>;
  stop(): Promise<void>;
}

/**
 * Everything a batch needs, in-process over the emulators and the simulator: ingest (with the
 * Files and Batches routes) behind the real HTTP adapter, the batch worker, and the batcher's
 * handler serving the batch lane. Drive it with the official `openai` client from `tenant()`.
 *
 * @example const stack = await startBatchStack(); const openai = await stack.tenant("acme");
 */
export async function startBatchStack(options: BatchStackOptions = {}): Promise<BatchStack> {
  const pipeline = await startPipeline({ ...options, start: false });
  const { stack } = pipeline;
  const env = {
    ...stack.env,
    INFERENCE_URL: pipeline.sim.url,
    DEEPQUEUE_BATCH_WINDOW: "20",
    DEEPQUEUE_BATCH_CHUNK_LINES: "5",
    ...options.env,
  };
  const handler = createIngestFromEnv(env);
  const ingest = await serveHttp(handler, {
    port: 0,
    host: "127.0.0.1",
    drainMs: 500,
    preflight: handler.preflight,
    bodyLimitBytes: handler.bodyLimit,
  });
  let offset = 0;
  const now = () => Date.now() + offset;
  const deps = batchesDepsFromEnv(env, { sqs: stack.sqs, ddb: stack.ddb, s3: stack.s3, logger: silent, now });
  let budget = options.laneBudget ?? Number.POSITIVE_INFINITY;
  let stopping = false;
  // The batcher's handler, one line at a time, each waiting for the budget to allow it.
  const gatedLane: SqsHandler = async (event, context) => {
    const failures: Array<{ itemIdentifier: string }> = [];
    for (const record of event.Records) {
      while (budget <= 0 && !stopping) await new Promise((r) => setTimeout(r, 20));
      budget -= 1;
      const out = await pipeline.batcherHandler({ Records: [record] }, context);
      failures.push(...(out?.batchItemFailures ?? []));
    }
    return { batchItemFailures: failures };
  };
  const worker = async (name: string, queue: "batches" | "inference-batch", run: SqsHandler) =>
    createSqsWorker({
      name,
      sqs: stack.sqs,
      queueUrl: await deps.queueUrls.get(queueName(stack.prefix, queue)),
      handler: run,
      waitTimeSeconds: 1,
      visibilityTimeoutSeconds: 30,
      batchSize: 10,
      maxBatchingWindowMs: 20,
      concurrency: queue === "batches" ? 1 : 7,
      drainGraceMs: 2000,
      logger: silent,
    });
  const batches = await worker("batches", "batches", createBatchesHandler(deps) as unknown as SqsHandler);
  const lane = await worker("lane", "inference-batch", gatedLane);
  await Promise.all([batches.start(), lane.start()]);
  return {
    pipeline,
    ingest,
    batches,
    lane,
    allowLines(n) {
      budget += n;
    },
    advanceClock(ms) {
      offset += ms;
    },
    sweep() {
      const control = async (message: object) => {
        const { SendMessageCommand } = await import("@aws-sdk/client-sqs");
        const QueueUrl = await deps.queueUrls.get(queueName(stack.prefix, "batches"));
        await stack.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: JSON.stringify(message) }));
      };
      return new BatchSweeper({ ddb: stack.ddb, prefix: stack.prefix, control, now }).sweep();
    },
    async tenant(name, quota = {}) {
      const made = await provisionTenant(
        { sqs: stack.sqs, tenants: pipeline.tenants, prefix: stack.prefix },
        { tenant: name, dailyRequests: quota.dailyRequests ?? null },
      );
      return new OpenAI({ baseURL: `${ingest.url}/v1`, apiKey: made.api_key, maxRetries: 0 });
    },
    async stop() {
      stopping = true;
      await Promise.all([batches.stop(), lane.stop()]);
      await ingest.close();
      await handler.close();
      await pipeline.stop();
    },
  };
}
