/**
 * The throughput benchmark (issue 5): the same N requests straight to the
 * model-server simulator at its best concurrency, then through the pipeline
 * (requests queue → cache → inference queue → batcher → delivery queue →
 * deliver → the tenant's result queue), everything in this process on
 * loopback: emulators, simulator, workers. Reports pipeline ÷ direct
 * throughput (goal ≥ 0.9) and, at low load (one request at a time), the
 * latency each stage adds.
 *
 * `npx tsx bench/throughput.ts [--requests 300] [--max-tokens 64] [--time-scale 1] [--json]`
 */

import { parseArgs } from "node:util";
import { isMainThread } from "node:worker_threads";
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import pLimit from "p-limit";
import { type AcceptedRequest, buildEvent, EVENT_TYPES } from "../events/index.ts";
import { BATCHER_DEFAULTS } from "../functions/batcher/config.ts";
import { createBatcherHandler } from "../functions/batcher/handler.ts";
import { createCacheHandler } from "../functions/cache/handler.ts";
import { deliverDepsFromEnv } from "../functions/deliver/deps.ts";
import { createDeliverHandler } from "../functions/deliver/handler.ts";
import { createSqsWorker, type SqsHandler, type SqsWorker } from "../functions/runtime/sqs-worker.ts";
import { bootstrap } from "../functions/shared/bootstrap.ts";
import { createDynamoBaseClient, createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { newEventId, newRequestId } from "../functions/shared/ids.ts";
import { createInferenceClient, type InferenceClient } from "../functions/shared/inference-client.ts";
import { createLogger } from "../functions/shared/logger.ts";
import { registry } from "../functions/shared/metrics.ts";
import { queueName, resultQueueName } from "../functions/shared/names.ts";
import { withoutUndefined } from "../functions/shared/options.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { QueueUrls } from "../functions/shared/queues.ts";
import { DynamoResponseCache } from "../functions/shared/stores/cache.ts";
import { DynamoConversationStore } from "../functions/shared/stores/conversations.ts";
import { DynamoRequestStore } from "../functions/shared/stores/requests.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { countPromptTokens, warmTokenizer } from "../functions/shared/tokenizer.ts";
import { startEmulators } from "../local/emulators.ts";
import { type ResultConsumer, resultConsumer } from "./result-consumer.ts";
import { throughputSummary } from "./throughput-report.ts";
import {
  type BenchSimulator,
  inThreadSimulator,
  startEmulatorsThread,
  startSimulatorThread,
} from "./throughput-threads.ts";

export interface ThroughputBenchOptions {
  /** Requests per measured run. @default 400 */
  requests?: number;
  /** max_tokens of every request (answers end naturally at 8–200 tokens, cut here). @default 64 */
  maxTokens?: number;
  /** Concurrencies tried for the direct run; the best one is the baseline. @default [32, 64, 128] */
  concurrencies?: number[];
  /** Simulator latency multiplier (1 = a 7B model on one A100). @default 1 */
  timeScale?: number;
  /** Batcher: requests in flight (K) and micro-batch wait. @default BATCHER_DEFAULTS */
  maxInFlight?: number;
  batchWaitMs?: number;
  /** Requests sent one at a time for the per-stage latency. @default 8 */
  lowLoadRequests?: number;
  /** Give up on a run after this long. @default 180000 */
  runTimeoutMs?: number;
  /** Run the emulators and the simulator on their own threads (falls back to this one). @default true */
  threads?: boolean;
  log?: (line: string) => void;
}

export interface StageLatency {
  /** Mean ms a message waited in the stage's queue (SendMessage → first receive). */
  queueWaitMs: number;
  /** Mean ms the stage's handler took per SQS batch (for the batcher: minus the model call). */
  handlerMs: number;
}

export interface ThroughputBenchResult {
  requests: number;
  maxTokens: number;
  timeScale: number;
  direct: {
    byConcurrency: Array<{ concurrency: number; requestsPerSecond: number }>;
    best: { concurrency: number; requestsPerSecond: number };
  };
  pipeline: {
    requestsPerSecond: number;
    seconds: number;
    completed: number;
    maxInFlight: number;
    batchWaitMs: number;
    meanPromptsPerCall: number;
  };
  /** pipeline ÷ direct best; the goal is ≥ 0.9. */
  ratio: number;
  goalMet: boolean;
  lowLoad: {
    /** Mean ms of one request straight to the simulator, alone. */
    directMs: number;
    /** Mean ms submit → result event in the consumer's hand, one request at a time. */
    pipelineMs: number;
    addedMs: number;
    stages: { cache: StageLatency; batcher: StageLatency; modelMs: number; deliver: StageLatency };
  };
  notes: string[];
}

const silent = createLogger({ level: "silent" });
const round = (n: number, digits = 1) => Number(n.toFixed(digits));

/** Every option's default, in one place. */
const THROUGHPUT_DEFAULTS = {
  requests: 400,
  maxTokens: 64,
  concurrencies: [32, 64, 128],
  timeScale: 1,
  maxInFlight: BATCHER_DEFAULTS.maxInFlight as number,
  batchWaitMs: BATCHER_DEFAULTS.batchWaitMs as number,
  lowLoadRequests: 8,
  runTimeoutMs: 180_000,
  threads: true,
  log: (_line: string): void => undefined,
};
type Options = typeof THROUGHPUT_DEFAULTS;

function promptFor(run: string, i: number): string {
  return `[${run} ${i}] Explain in a few sentences how a message queue smooths bursts of inference traffic.`;
}

async function histogramMean(name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  const match = (v: { labels: Record<string, unknown>; metricName?: string }, suffix: string) =>
    v.metricName === `${name}${suffix}` && Object.entries(labels).every(([k, val]) => v.labels[k] === val);
  const sum = values.filter((v) => match(v, "_sum")).reduce((a, v) => a + v.value, 0);
  const count = values.filter((v) => match(v, "_count")).reduce((a, v) => a + v.value, 0);
  return count ? sum / count : 0;
}

/** Runs `task` for each index with at most `limit` running at once. */
async function pool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  const limited = pLimit(limit);
  await Promise.all(Array.from({ length: count }, (_, i) => limited(() => task(i))));
}

/**
 * @example
 * const result = await runThroughputBench({ requests: 300, log: console.error });
 * console.log(result.ratio); // ≥ 0.9
 */
export async function runThroughputBench(
  options: ThroughputBenchOptions = {},
): Promise<ThroughputBenchResult> {
  const o: Options = { ...THROUGHPUT_DEFAULTS, ...withoutUndefined(options) };
  const notes: string[] = [];
  warmTokenizer();
  const { emulators, sim } = await startStandIns(o, notes);
  const sqs = createSqsClient({ endpoint: emulators.sqsEndpoint });
  const dynamo = createDynamoBaseClient({ endpoint: emulators.dynamoEndpoint });
  const ddb = createDynamoClient({ endpoint: emulators.dynamoEndpoint });
  const workers: SqsWorker[] = [];
  try {
    await bootstrap({ sqs, dynamo, prefix: PREFIX });
    const tenants = new DynamoTenantStore(ddb, PREFIX);
    await provisionTenant({ sqs, tenants, prefix: PREFIX }, { tenant: "bench", dailyRequests: null });
    const urls = new QueueUrls(sqs);
    const requests = new DynamoRequestStore(ddb, PREFIX);
    const client = createInferenceClient({
      baseUrl: sim.url,
      retries: 0,
      timeoutMs: 120_000,
      maxConcurrency: 1024,
    });
    const direct = await directRuns(client, o);
    workers.push(...(await startPipelineWorkers({ sqs, ddb, urls, requests, tenants }, sim.url, o)));
    const consumer = resultConsumer(sqs, await urls.get(resultQueueName(PREFIX, "bench")));
    const produce = producer(sqs, requests, await urls.get(queueName(PREFIX, "requests")), o.maxTokens);
    const pipeline = await pipelineRun(o, sim, produce, consumer);
    const lowLoad = await lowLoadRun(o, client, produce, consumer);
    consumer.stop();
    return resultOf(o, direct, pipeline, lowLoad, notes);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    sqs.destroy();
    dynamo.destroy();
    await sim.stop();
    await emulators.stop();
  }
}

const PREFIX = "bench";

/**
 * The emulators and the simulator: on their own threads when this module can be loaded in one
 * (tsx, plain Node); in this thread otherwise (e.g. under vitest, whose transform a worker thread
 * does not inherit), with a note saying so.
 */
async function startStandIns(o: Options, notes: string[]) {
  const onMain = <T>(what: string, start: () => Promise<T>): Promise<T> => {
    notes.push(`${what} ran on the main thread, sharing it with the pipeline`);
    return start();
  };
  const inProcessEmulators = () => startEmulators({ sqsPort: 0, dynamoPort: 0 });
  const emulators = o.threads
    ? await startEmulatorsThread().catch(() => onMain("the emulators", inProcessEmulators))
    : await onMain("the emulators", inProcessEmulators);
  const sim = o.threads
    ? await startSimulatorThread(o.timeScale).catch(() =>
        onMain("the simulator", () => inThreadSimulator(o.timeScale)),
      )
    : await onMain("the simulator", () => inThreadSimulator(o.timeScale));
  return { emulators, sim };
}

/** The same requests straight to the simulator, one call each, at several concurrencies. */
async function directRuns(client: InferenceClient, o: Options): Promise<ThroughputBenchResult["direct"]> {
  const byConcurrency: Array<{ concurrency: number; requestsPerSecond: number }> = [];
  for (const concurrency of o.concurrencies) {
    const e0 = performance.eventLoopUtilization();
    const started = performance.now();
    await pool(o.requests, concurrency, async (i) => {
      await client.completions({
        model: "deepseek-chat",
        prompt: promptFor("main", i),
        max_tokens: o.maxTokens,
        temperature: 0,
      });
    });
    const rps = o.requests / ((performance.now() - started) / 1000);
    o.log(`  event loop busy ${(performance.eventLoopUtilization(e0).utilization * 100).toFixed(0)}%`);
    byConcurrency.push({ concurrency, requestsPerSecond: round(rps, 2) });
    o.log(`direct  concurrency ${concurrency}: ${rps.toFixed(1)} req/s`);
  }
  const best = byConcurrency.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
  return { byConcurrency, best };
}

interface PipelineStores {
  sqs: SQSClient;
  ddb: ReturnType<typeof createDynamoClient>;
  urls: QueueUrls;
  requests: DynamoRequestStore;
  tenants: DynamoTenantStore;
}

/** The cache, batcher and deliver workers, as their Deployments run them. */
async function startPipelineWorkers(
  { sqs, ddb, urls, requests, tenants }: PipelineStores,
  simUrl: string,
  o: Options,
): Promise<SqsWorker[]> {
  const prefix = PREFIX;
  const { maxInFlight, batchWaitMs } = o;
  const common = {
    sqs,
    queueUrls: urls,
    prefix,
    requests,
    tenants,
    conversations: new DynamoConversationStore(ddb, prefix),
    cache: new DynamoResponseCache(ddb, prefix),
  };
  const cacheHandler = createCacheHandler({ ...common, responses: common.cache, logger: silent });
  const batcherHandler = createBatcherHandler({
    ...common,
    inference: createInferenceClient({
      baseUrl: simUrl,
      retries: 0,
      timeoutMs: 120_000,
      maxConcurrency: maxInFlight,
    }),
    options: { maxInFlight },
    logger: silent,
  });
  const deliverHandler = createDeliverHandler(
    deliverDepsFromEnv(
      { DEEPQUEUE_PREFIX: prefix, DEEPQUEUE_DEV_MODE: "true" },
      {
        sqs,
        ddb,
        logger: silent,
      },
    ),
  );
  const start = async (
    name: string,
    queue: "requests" | "inference" | "delivery",
    handler: unknown,
    concurrency: number,
    windowMs = 0,
  ) => {
    const worker = createSqsWorker({
      name,
      sqs,
      queueUrl: await urls.get(queueName(prefix, queue)),
      handler: handler as SqsHandler,
      waitTimeSeconds: 1,
      batchSize: 10,
      maxBatchingWindowMs: windowMs,
      concurrency,
      logger: silent,
    });
    await worker.start();
    return worker;
  };
  return [
    await start("cache", "requests", cacheHandler, 4),
    await start("batcher", "inference", batcherHandler, Math.ceil(maxInFlight / 10) + 1, batchWaitMs),
    await start("deliver", "delivery", deliverHandler, 4),
  ];
}

type Produce = (run: string, indexes: number[]) => Promise<string[]>;

/** Writes accepted requests and sends them to `<prefix>-requests`, as ingest would; returns their ids. */
function producer(
  sqs: SQSClient,
  requests: DynamoRequestStore,
  requestsUrl: string,
  maxTokens: number,
): Produce {
  return async (run, indexes) => {
    const accepted = indexes.map((i): AcceptedRequest => {
      const now = Date.now();
      const prompt = promptFor(run, i);
      return {
        id: newRequestId(),
        tenant: "bench",
        model: "deepseek-chat",
        prompt,
        max_tokens: maxTokens,
        temperature: 0,
        cache: true,
        prompt_tokens: countPromptTokens({ prompt }),
        created_at: new Date(now).toISOString(),
        deadline_at: new Date(now + 900_000).toISOString(),
      };
    });
    await Promise.all(accepted.map((a) => requests.create(a)));
    for (let i = 0; i < accepted.length; i += 10) {
      await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: requestsUrl,
          Entries: accepted.slice(i, i + 10).map((data, k) => ({
            Id: String(k),
            MessageBody: JSON.stringify(
              buildEvent({ id: newEventId(), type: EVENT_TYPES.requestAccepted, subject: data.id, data }),
            ),
          })),
        }),
      );
    }
    return accepted.map((a) => a.id);
  };
}

/**
 * The measured pipeline run: the direct run's prompts ("main"), so the model does the same work;
 * distinct from each other, so no cache hits.
 */
async function pipelineRun(
  o: Options,
  sim: BenchSimulator,
  produce: Produce,
  consumer: ResultConsumer,
): Promise<{ requestsPerSecond: number; seconds: number; completed: number; meanPromptsPerCall: number }> {
  const n = o.requests;
  await sim.resetStats();
  const eluStart = performance.eventLoopUtilization();
  const pipelineStarted = performance.now();
  const ids: string[] = [];
  await pool(Math.ceil(n / 10), 4, async (chunk) => {
    const indexes = Array.from({ length: Math.min(10, n - chunk * 10) }, (_, k) => chunk * 10 + k);
    ids.push(...(await produce("main", indexes)));
  });
  const produced = (performance.now() - pipelineStarted) / 1000;
  await consumer.waitAll(ids, o.runTimeoutMs);
  const seconds = (performance.now() - pipelineStarted) / 1000;
  const elu = performance.eventLoopUtilization(eluStart).utilization;
  o.log(
    `produced in ${produced.toFixed(1)} s; event loop busy ${(elu * 100).toFixed(0)}% during the pipeline run`,
  );
  const requestsPerSecond = n / seconds;
  const calls = (await sim.stats()).promptsPerCall;
  const meanPromptsPerCall = calls.length ? calls.reduce((a, b) => a + b, 0) / calls.length : 0;
  o.log(
    `pipeline: ${requestsPerSecond.toFixed(1)} req/s (${seconds.toFixed(1)} s, ${meanPromptsPerCall.toFixed(1)} prompts per model call)`,
  );
  return { requestsPerSecond, seconds, completed: ids.length, meanPromptsPerCall };
}

/** One request at a time, direct then through the pipeline; per-stage means from the metrics. */
async function lowLoadRun(
  o: Options,
  client: InferenceClient,
  produce: Produce,
  consumer: ResultConsumer,
): Promise<ThroughputBenchResult["lowLoad"]> {
  const lowLoad = o.lowLoadRequests;
  let directTotal = 0;
  for (let i = 0; i < lowLoad; i++) {
    const t = performance.now();
    await client.completions({
      model: "deepseek-chat",
      prompt: promptFor("low", i),
      max_tokens: o.maxTokens,
      temperature: 0,
    });
    directTotal += performance.now() - t;
  }
  registry.resetMetrics();
  let pipelineTotal = 0;
  for (let i = 0; i < lowLoad; i++) {
    const t = performance.now();
    const [id] = await produce("low", [i]);
    await consumer.waitAll([id!], 60_000);
    pipelineTotal += performance.now() - t;
  }
  const stage = async (fn: string, minusModel = 0): Promise<StageLatency> => ({
    queueWaitMs: round((await histogramMean("deepqueue_queue_wait_seconds", { function: fn })) * 1000),
    handlerMs: round(
      (await histogramMean("deepqueue_worker_handler_seconds", { function: fn })) * 1000 - minusModel,
    ),
  });
  const modelMs = (await histogramMean("deepqueue_model_latency_seconds", {})) * 1000;
  const result = {
    directMs: round(directTotal / lowLoad),
    pipelineMs: round(pipelineTotal / lowLoad),
    addedMs: round((pipelineTotal - directTotal) / lowLoad),
    stages: {
      cache: await stage("cache"),
      batcher: await stage("batcher", modelMs),
      modelMs: round(modelMs),
      deliver: await stage("deliver"),
    },
  };
  o.log(`low load: direct ${result.directMs} ms, pipeline ${result.pipelineMs} ms (+${result.addedMs} ms)`);
  return result;
}

function resultOf(
  o: Options,
  direct: ThroughputBenchResult["direct"],
  pipeline: Awaited<ReturnType<typeof pipelineRun>>,
  lowLoad: ThroughputBenchResult["lowLoad"],
  notes: string[],
): ThroughputBenchResult {
  const ratio = round(pipeline.requestsPerSecond / direct.best.requestsPerSecond, 3);
  return {
    requests: o.requests,
    maxTokens: o.maxTokens,
    timeScale: o.timeScale,
    direct,
    pipeline: {
      requestsPerSecond: round(pipeline.requestsPerSecond, 2),
      seconds: round(pipeline.seconds, 2),
      completed: pipeline.completed,
      maxInFlight: o.maxInFlight,
      batchWaitMs: o.batchWaitMs,
      meanPromptsPerCall: round(pipeline.meanPromptsPerCall, 2),
    },
    ratio,
    goalMet: ratio >= 0.9,
    lowLoad,
    notes: [
      ...notes,
      ...(notes.length
        ? []
        : [
            "one process on loopback: the emulators (standing for SQS and DynamoDB) and the simulator (standing for a GPU server) each on their own thread, the cache, batcher and deliver workers and the consumer on the main thread; all share the machine's cores",
          ]),
      "pipeline time runs from the first record write to the last result event in the consumer's hand (producer included)",
      "per-stage latency: queue wait = SentTimestamp → first receive; handler = the stage's handler per SQS batch (batcher minus the model call)",
    ],
  };
}

if (isMainThread && import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      requests: { type: "string" },
      "max-tokens": { type: "string" },
      "time-scale": { type: "string" },
      "max-in-flight": { type: "string" },
      "batch-wait-ms": { type: "string" },
      json: { type: "boolean" },
    },
  });
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  const result = await runThroughputBench({
    requests: number(values.requests),
    maxTokens: number(values["max-tokens"]),
    timeScale: number(values["time-scale"]),
    maxInFlight: number(values["max-in-flight"]),
    batchWaitMs: number(values["batch-wait-ms"]),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${values.json ? JSON.stringify(result, null, 2) : throughputSummary(result)}\n`);
  process.exit(0);
}
