import { GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { z } from "zod";
import { createSqsClient } from "../shared/clients.ts";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";
import { createLogger, type Logger } from "../shared/logger.ts";
import { collectProcessMetrics, gauge } from "../shared/metrics.ts";
import { type PipelineQueue, queueName } from "../shared/names.ts";
import { QueueUrls } from "../shared/queues.ts";
import { streamsAnswer } from "../shared/record-parsing.ts";
import { flushTracing, startTracing } from "../shared/tracing.ts";
import {
  createSqsWorker,
  SQS_WORKER_DEFAULTS,
  type SqsHandler,
  type SqsWorker,
  type SqsWorkerOptions,
} from "./sqs-worker.ts";
import { serveWorkerEndpoints } from "./worker-endpoints.ts";

/**
 * One function as its container runs it: ingest behind the HTTP adapter
 * (Knative), cache / batcher / deliver / batches as SQS workers (KEDA-scaled
 * Deployments) with /healthz and /metrics on a small port.
 */

export const FUNCTION_NAMES = ["ingest", "cache", "batcher", "deliver", "batches"] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** Worker tunables shared by every SQS function; their defaults are the worker's own (SQS_WORKER_DEFAULTS). */
const runtimeEnvSchema = baseEnvSchema.extend({
  /** Long-poll wait of each receive (SQS maximum 20, as Lambda uses). */
  DEEPQUEUE_WORKER_WAIT_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(20)
    .default(SQS_WORKER_DEFAULTS.waitTimeSeconds),
  /** SIGTERM grace: in-flight batches get this long, then their messages are released. Keep below the pod's terminationGracePeriodSeconds. */
  DEEPQUEUE_WORKER_DRAIN_SECONDS: z.coerce
    .number()
    .min(0)
    .default(SQS_WORKER_DEFAULTS.drainGraceMs / 1000),
  /** SQS batches the deliver worker handles at once. */
  DEEPQUEUE_DELIVER_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(4),
});

export interface ServeOptions {
  /** Ingest's HTTP port. @default env PORT (8080) */
  port?: number;
  /** The worker's /healthz + /metrics port; 0 picks a free one. @default env DEEPQUEUE_WORKER_METRICS_PORT (9090) */
  metricsPort?: number;
  /** @default "0.0.0.0" for ingest (a container), "127.0.0.1" for the workers' metrics unless set */
  host?: string;
  /** @default process.env */
  env?: Record<string, string | undefined>;
  /** Overrides of the worker's receive settings (tests use short polls). */
  worker?: Partial<
    Pick<SqsWorkerOptions, "waitTimeSeconds" | "drainGraceMs" | "concurrency" | "visibilityTimeoutSeconds">
  >;
  logger?: Logger;
}

export interface ServedFunction {
  name: FunctionName;
  /** Ingest's base URL. */
  url?: string;
  /** A worker's /healthz + /metrics base URL. */
  metricsUrl?: string;
  worker?: SqsWorker;
  /**
   * Drains and stops; safe to call twice. `abortReceives` (default: on in dev mode) cuts
   * in-flight long polls instead of letting them end (see SqsWorker.stop).
   */
  stop(options?: { abortReceives?: boolean }): Promise<void>;
}

interface WorkerSpec {
  /** The queues it consumes, highest priority first (priority lanes). */
  queues: readonly PipelineQueue[];
  handler: SqsHandler;
  /** A cheap read of the function's table, for /healthz. */
  probe: () => Promise<unknown>;
  batchSize: number;
  maxBatchingWindowMs: number;
  concurrency: number;
  /** A message that goes to the handler without waiting out the batching window. */
  skipsWindow?: SqsWorkerOptions["skipsWindow"];
}

async function workerSpec(
  name: Exclude<FunctionName, "ingest">,
  env: Record<string, string | undefined>,
): Promise<WorkerSpec> {
  if (name === "cache") {
    const { cacheDepsFromEnv, createCacheHandler } = await import("../cache/handler.ts");
    const { loadCacheEnv } = await import("../cache/config.ts");
    const deps = cacheDepsFromEnv(env);
    return {
      queues: ["requests"],
      handler: createCacheHandler(deps),
      probe: () => deps.requests.get("healthz"),
      batchSize: 10,
      maxBatchingWindowMs: 0,
      concurrency: loadCacheEnv(env).DEEPQUEUE_CACHE_CONCURRENCY,
    };
  }
  if (name === "batcher") {
    const { batcherDepsFromEnv, createBatcherHandler } = await import("../batcher/handler.ts");
    const { loadBatcherEnv } = await import("../batcher/config.ts");
    const batcherEnv = loadBatcherEnv(env);
    const deps = batcherDepsFromEnv(env);
    return {
      // Interactive work first; batch lines (POST /v1/batches) only when it is served.
      queues: ["inference", "inference-batch"],
      handler: createBatcherHandler(deps),
      probe: () => deps.requests.get("healthz"),
      // The SQS batch is the micro-batch; enough loops that K requests can be in flight.
      batchSize: batcherEnv.DEEPQUEUE_BATCH_SIZE,
      maxBatchingWindowMs: batcherEnv.DEEPQUEUE_BATCH_WAIT_MS,
      // …except for a streamed request: its caller waits for the first token.
      skipsWindow: streamsAnswer,
      concurrency:
        Math.ceil(batcherEnv.DEEPQUEUE_BATCHER_MAX_IN_FLIGHT / batcherEnv.DEEPQUEUE_BATCH_SIZE) + 1,
    };
  }
  if (name === "batches") {
    const { batchesDepsFromEnv } = await import("../batches/deps.ts");
    const { createBatchesHandler } = await import("../batches/handler.ts");
    const deps = batchesDepsFromEnv(env);
    return {
      queues: ["batches"],
      handler: createBatchesHandler(deps),
      probe: () => deps.batches.load("healthz"),
      // Finished lines arriving together are counted with one update per batch: gather them briefly.
      batchSize: 10,
      maxBatchingWindowMs: 200,
      // One step at a time per process: two steps of one batch would send a chunk twice.
      concurrency: 1,
    };
  }
  const { createDeliverHandler } = await import("../deliver/handler.ts");
  const { deliverDepsFromEnv } = await import("../deliver/deps.ts");
  const deps = deliverDepsFromEnv(env);
  return {
    queues: ["delivery"],
    handler: createDeliverHandler(deps) as unknown as SqsHandler,
    probe: () => deps.requests.get("healthz"),
    batchSize: 10,
    maxBatchingWindowMs: 0,
    concurrency: loadRuntimeEnv(env).DEEPQUEUE_DELIVER_CONCURRENCY,
  };
}

const tokenizerLoad = gauge(
  "deepqueue_tokenizer_load_seconds",
  "How long loading the DeepSeek tokenizer took in this process (once, shortly after start)",
);

/** Loads the tokenizer just after the function is ready, not on the way there (cold starts). */
function loadTokenizerSoon(logger: Logger): void {
  void import("../shared/tokenizer.ts").then(({ warmTokenizerSoon }) =>
    warmTokenizerSoon((ms) => {
      tokenizerLoad.set(ms / 1000);
      logger.info({ ms: Math.round(ms) }, "tokenizer loaded");
    }),
  );
}

/** What serving any function needs: its env, logger and the caller's options. */
interface ServeContext {
  options: ServeOptions;
  source: Record<string, string | undefined>;
  env: RuntimeEnv;
  logger: Logger;
}

type RuntimeEnv = ReturnType<typeof loadRuntimeEnv>;

function loadRuntimeEnv(env: Record<string, string | undefined>) {
  return loadEnv(runtimeEnvSchema, env);
}

/**
 * @example
 * const served = await serveFunction("batcher", { metricsPort: 0 });
 * process.once("SIGTERM", () => void served.stop());
 */
export async function serveFunction(name: FunctionName, options: ServeOptions = {}): Promise<ServedFunction> {
  const source = options.env ?? process.env;
  const env = loadRuntimeEnv(source);
  const logger = options.logger ?? createLogger({ name, level: env.LOG_LEVEL });
  collectProcessMetrics();
  // Off (and nothing loaded) unless OTEL_* variables ask for traces (docs/api.md#tracing).
  if (await startTracing(source, { serviceName: `deepqueue-${name}` })) {
    logger.info({ service: source.OTEL_SERVICE_NAME ?? `deepqueue-${name}` }, "tracing on (OpenTelemetry)");
  }
  const context = { options, source, env, logger };
  return name === "ingest" ? serveIngest(context) : serveWorker(name, context);
}

/** Ingest behind the HTTP adapter, /healthz and /metrics on the metrics port. */
async function serveIngest({ options, source, env, logger }: ServeContext): Promise<ServedFunction> {
  const { serveHttp } = await import("./http.ts");
  const { createIngestFromEnv } = await import("../ingest/handler.ts");
  const ingest = createIngestFromEnv(source);
  const server = await serveHttp(ingest, {
    port: options.port ?? env.PORT,
    host: options.host ?? "0.0.0.0",
    functionName: "ingest",
    logger,
    preflight: ingest.preflight,
    bodyLimitBytes: ingest.bodyLimit,
    requestTimeoutMs: ingest.requestTimeout,
  });
  // /metrics off the public port: on the metrics port, like the workers (not routed by Knative).
  const endpoints = await serveWorkerEndpoints({
    port: options.metricsPort ?? env.DEEPQUEUE_WORKER_METRICS_PORT,
    host: options.host ?? "0.0.0.0",
    health: async () => (await fetch(`${server.url}/healthz`)).ok,
  });
  logger.info({ url: server.url, metrics: endpoints.url }, "ingest listening");
  loadTokenizerSoon(logger);
  return {
    name: "ingest",
    url: server.url,
    metricsUrl: endpoints.url,
    stop: async () => {
      await server.close();
      await endpoints.close();
      await ingest.close();
      await flushTracing();
    },
  };
}

/** A function as an SQS worker off its queues (priority order), /healthz and /metrics on the metrics port. */
async function serveWorker(
  name: Exclude<FunctionName, "ingest">,
  context: ServeContext,
): Promise<ServedFunction> {
  const { options, source, env, logger } = context;
  const spec = await workerSpec(name, source);
  const sqs: SQSClient = createSqsClient({ env });
  const queueUrls = new QueueUrls(sqs);
  const urls = await Promise.all(spec.queues.map((q) => queueUrls.get(queueName(env.DEEPQUEUE_PREFIX, q))));
  const worker = createSqsWorker({
    name,
    sqs,
    queues: urls.map((url) => ({ url })),
    handler: spec.handler,
    logger,
    region: env.AWS_REGION,
    batchSize: spec.batchSize,
    maxBatchingWindowMs: spec.maxBatchingWindowMs,
    skipsWindow: spec.skipsWindow,
    concurrency: options.worker?.concurrency ?? spec.concurrency,
    waitTimeSeconds: options.worker?.waitTimeSeconds ?? env.DEEPQUEUE_WORKER_WAIT_SECONDS,
    drainGraceMs: options.worker?.drainGraceMs ?? env.DEEPQUEUE_WORKER_DRAIN_SECONDS * 1000,
    visibilityTimeoutSeconds: options.worker?.visibilityTimeoutSeconds,
  });
  await worker.start();
  const endpoints = await serveWorkerEndpoints({
    port: options.metricsPort ?? env.DEEPQUEUE_WORKER_METRICS_PORT,
    host: options.host ?? "0.0.0.0",
    // Healthy when the function can reach its queues and its table (docs/api.md#operations).
    health: async () => {
      if (!worker.healthy()) return false;
      await Promise.all([...urls.map((url) => queueReachable(sqs, url)), spec.probe()]);
      return true;
    },
  });
  logger.info({ queues: urls, metrics: endpoints.url }, `${name} worker running`);
  // The batcher counts answer tokens of prompt batches, the cache stage conversation history.
  if (name !== "deliver") loadTokenizerSoon(logger);
  let stopping: Promise<void> | undefined;
  const stop = async (abortReceives: boolean) => {
    await worker.stop({ abortReceives });
    await endpoints.close();
    sqs.destroy();
    await flushTracing();
  };
  return {
    name,
    metricsUrl: endpoints.url,
    worker,
    // Dev mode: Ctrl-C should not wait out a 20 s long poll; a message caught in it only waits
    // one visibility timeout (the data dir keeps it across restarts).
    stop: (stopOptions = {}) => {
      stopping ??= stop(stopOptions.abortReceives ?? env.DEEPQUEUE_DEV_MODE);
      return stopping;
    },
  };
}

/** Resolves when the queue answers GetQueueAttributes; rejects otherwise (the health check). */
async function queueReachable(sqs: SQSClient, queueUrl: string): Promise<void> {
  await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }));
}
