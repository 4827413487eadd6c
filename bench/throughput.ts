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

import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
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
import { createInferenceClient } from "../functions/shared/inference-client.ts";
import { createLogger } from "../functions/shared/logger.ts";
import { registry } from "../functions/shared/metrics.ts";
import { queueName, resultQueueName } from "../functions/shared/names.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { QueueUrls } from "../functions/shared/queues.ts";
import { DynamoCacheStore } from "../functions/shared/stores/cache.ts";
import { DynamoConversationStore } from "../functions/shared/stores/conversations.ts";
import { DynamoRequestStore } from "../functions/shared/stores/requests.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { countPromptTokens, warmTokenizer } from "../functions/shared/tokenizer.ts";
import { startEmulators } from "../local/emulators.ts";
import { type SimStats, startSimulator } from "../local/sim/server.ts";
import { BenchError } from "./errors.ts";

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
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/**
 * @example
 * const result = await runThroughputBench({ requests: 300, log: console.error });
 * console.log(result.ratio); // ≥ 0.9
 */
export async function runThroughputBench(
  options: ThroughputBenchOptions = {},
): Promise<ThroughputBenchResult> {
  const n = options.requests ?? 400;
  const maxTokens = options.maxTokens ?? 64;
  const timeScale = options.timeScale ?? 1;
  const concurrencies = options.concurrencies ?? [32, 64, 128];
  const maxInFlight = options.maxInFlight ?? BATCHER_DEFAULTS.maxInFlight;
  const batchWaitMs = options.batchWaitMs ?? BATCHER_DEFAULTS.batchWaitMs;
  const lowLoad = options.lowLoadRequests ?? 8;
  const runTimeoutMs = options.runTimeoutMs ?? 180_000;
  const log = options.log ?? (() => undefined);
  const notes: string[] = [];
  warmTokenizer();

  // Own threads when this module can be loaded in one (tsx, plain Node); in this thread otherwise
  // (e.g. under vitest, whose transform a worker thread does not inherit).
  const threads = options.threads ?? true;
  const onMain = <T>(what: string, start: () => Promise<T>): Promise<T> => {
    notes.push(`${what} ran on the main thread, sharing it with the pipeline`);
    return start();
  };
  const inProcessEmulators = () => startEmulators({ sqsPort: 0, dynamoPort: 0 });
  const emulators = threads
    ? await startEmulatorsThread().catch(() => onMain("the emulators", inProcessEmulators))
    : await onMain("the emulators", inProcessEmulators);
  const sim = threads
    ? await startSimulatorThread(timeScale).catch(() =>
        onMain("the simulator", () => inThreadSimulator(timeScale)),
      )
    : await onMain("the simulator", () => inThreadSimulator(timeScale));
  const sqs = createSqsClient({ endpoint: emulators.sqsEndpoint });
  const dynamo = createDynamoBaseClient({ endpoint: emulators.dynamoEndpoint });
  const ddb = createDynamoClient({ endpoint: emulators.dynamoEndpoint });
  const prefix = "bench";
  const workers: SqsWorker[] = [];
  try {
    await bootstrap({ sqs, dynamo, prefix });
    const tenants = new DynamoTenantStore(ddb, prefix);
    await provisionTenant({ sqs, tenants, prefix }, { tenant: "bench", dailyRequests: null });
    const urls = new QueueUrls(sqs);
    const requests = new DynamoRequestStore(ddb, prefix);

    // ---- direct: the same requests straight to the simulator, one call each, at several concurrencies
    const client = createInferenceClient({
      baseUrl: sim.url,
      retries: 0,
      timeoutMs: 120_000,
      maxConcurrency: 1024,
    });
    const direct = async (run: string, count: number, concurrency: number) => {
      const started = performance.now();
      await pool(count, concurrency, async (i) => {
        await client.completions({
          model: "deepseek-chat",
          prompt: promptFor(run, i),
          max_tokens: maxTokens,
          temperature: 0,
        });
      });
      return count / ((performance.now() - started) / 1000);
    };
    const byConcurrency: Array<{ concurrency: number; requestsPerSecond: number }> = [];
    for (const concurrency of concurrencies) {
      const e0 = performance.eventLoopUtilization();
      const rps = await direct("main", n, concurrency);
      log(`  event loop busy ${(performance.eventLoopUtilization(e0).utilization * 100).toFixed(0)}%`);
      byConcurrency.push({ concurrency, requestsPerSecond: round(rps, 2) });
      log(`direct  concurrency ${concurrency}: ${rps.toFixed(1)} req/s`);
    }
    const best = byConcurrency.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));

    // ---- the pipeline: cache, batcher and deliver workers as their Deployments run them
    const common = {
      sqs,
      queueUrls: urls,
      prefix,
      requests,
      tenants,
      conversations: new DynamoConversationStore(ddb, prefix),
      cache: new DynamoCacheStore(ddb, prefix),
    };
    const cacheHandler = createCacheHandler({ ...common, responses: common.cache, logger: silent });
    const batcherHandler = createBatcherHandler({
      ...common,
      inference: createInferenceClient({
        baseUrl: sim.url,
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
      workers.push(worker);
    };
    await start("cache", "requests", cacheHandler, 4);
    await start("batcher", "inference", batcherHandler, Math.ceil(maxInFlight / 10) + 1, batchWaitMs);
    await start("deliver", "delivery", deliverHandler, 4);

    const consumer = resultConsumer(sqs, await urls.get(resultQueueName(prefix, "bench")));
    const requestsUrl = await urls.get(queueName(prefix, "requests"));
    const produce = async (run: string, indexes: number[]) => {
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

    // Same prompts as the direct run ("main"), so the model does the same work; distinct from each other, so no cache hits.
    await sim.resetStats();
    const eluStart = performance.eventLoopUtilization();
    const pipelineStarted = performance.now();
    const ids: string[] = [];
    await pool(Math.ceil(n / 10), 4, async (chunk) => {
      const indexes = Array.from({ length: Math.min(10, n - chunk * 10) }, (_, k) => chunk * 10 + k);
      ids.push(...(await produce("main", indexes)));
    });
    const produced = (performance.now() - pipelineStarted) / 1000;
    await consumer.waitAll(ids, runTimeoutMs);
    const pipelineSeconds = (performance.now() - pipelineStarted) / 1000;
    const elu = performance.eventLoopUtilization(eluStart).utilization;
    log(
      `produced in ${produced.toFixed(1)} s; event loop busy ${(elu * 100).toFixed(0)}% during the pipeline run`,
    );
    const pipelineRps = n / pipelineSeconds;
    const calls = (await sim.stats()).promptsPerCall;
    const meanPromptsPerCall = calls.length ? calls.reduce((a, b) => a + b, 0) / calls.length : 0;
    log(
      `pipeline: ${pipelineRps.toFixed(1)} req/s (${pipelineSeconds.toFixed(1)} s, ${meanPromptsPerCall.toFixed(1)} prompts per model call)`,
    );

    // ---- low load: one request at a time, direct then through the pipeline, per-stage means from the metrics
    let directTotal = 0;
    for (let i = 0; i < lowLoad; i++) {
      const t = performance.now();
      await client.completions({
        model: "deepseek-chat",
        prompt: promptFor("low", i),
        max_tokens: maxTokens,
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
    const lowLoadResult = {
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
    log(
      `low load: direct ${lowLoadResult.directMs} ms, pipeline ${lowLoadResult.pipelineMs} ms (+${lowLoadResult.addedMs} ms)`,
    );
    consumer.stop();

    const ratio = round(pipelineRps / best.requestsPerSecond, 3);
    return {
      requests: n,
      maxTokens,
      timeScale,
      direct: { byConcurrency, best },
      pipeline: {
        requestsPerSecond: round(pipelineRps, 2),
        seconds: round(pipelineSeconds, 2),
        completed: ids.length,
        maxInFlight,
        batchWaitMs,
        meanPromptsPerCall: round(meanPromptsPerCall, 2),
      },
      ratio,
      goalMet: ratio >= 0.9,
      lowLoad: lowLoadResult,
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
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    sqs.destroy();
    dynamo.destroy();
    await sim.stop();
    await emulators.stop();
  }
}

async function inThreadSimulator(timeScale: number) {
  const sim = await startSimulator({ port: 0, host: "127.0.0.1", timeScale });
  return {
    url: sim.url,
    stats: async () => sim.stats(),
    resetStats: async () => sim.resetStats(),
    stop: () => sim.stop(),
  };
}

/**
 * The emulators on their own thread: they stand for SQS and DynamoDB, remote
 * services in production, so their CPU is not the pipeline's.
 */
async function startEmulatorsThread() {
  const worker = new Worker(new URL(import.meta.url), { workerData: { throughputEmulators: true } });
  const endpoints = await new Promise<{ sqsEndpoint: string; dynamoEndpoint: string }>((resolve, reject) => {
    worker.once("error", reject);
    worker.once("message", resolve);
  });
  return {
    ...endpoints,
    async stop() {
      worker.postMessage("stop");
      await new Promise((resolve) => worker.once("message", resolve));
      await worker.terminate();
    },
  };
}

/**
 * The simulator on its own thread: it stands for a GPU server, so the
 * pipeline's CPU work in this process must not slow its clock (it would in a
 * shared event loop, and only in the pipeline run, biasing the ratio).
 */
async function startSimulatorThread(timeScale: number) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { throughputSim: { timeScale } } });
  const replies = new Map<number, (value: unknown) => void>();
  let next = 0;
  const ready = new Promise<string>((resolve, reject) => {
    worker.once("error", reject);
    worker.on("message", (msg: { url?: string; id?: number; value?: unknown }) => {
      if (msg.url) resolve(msg.url);
      else if (msg.id !== undefined) replies.get(msg.id)?.(msg.value);
    });
  });
  const call = (op: "stats" | "reset" | "stop") =>
    new Promise<unknown>((resolve) => {
      const id = next++;
      replies.set(id, resolve);
      worker.postMessage({ id, op });
    });
  const url = await ready;
  return {
    url,
    stats: () => call("stats") as Promise<SimStats>,
    resetStats: () => call("reset"),
    async stop() {
      await call("stop");
      await worker.terminate();
    },
  };
}

if (!isMainThread && (workerData as { throughputEmulators?: boolean })?.throughputEmulators) {
  const emulators = await startEmulators({ sqsPort: 0, dynamoPort: 0 });
  parentPort!.once("message", async () => {
    await emulators.stop();
    parentPort!.postMessage("stopped");
  });
  parentPort!.postMessage({ sqsEndpoint: emulators.sqsEndpoint, dynamoEndpoint: emulators.dynamoEndpoint });
}

if (!isMainThread && (workerData as { throughputSim?: { timeScale: number } })?.throughputSim) {
  const { timeScale } = (workerData as { throughputSim: { timeScale: number } }).throughputSim;
  const sim = await startSimulator({ port: 0, host: "127.0.0.1", timeScale });
  parentPort!.on("message", async (msg: { id: number; op: string }) => {
    let value: unknown;
    if (msg.op === "stats") value = sim.stats();
    if (msg.op === "reset") sim.resetStats();
    if (msg.op === "stop") await sim.stop();
    parentPort!.postMessage({ id: msg.id, value });
  });
  parentPort!.postMessage({ url: sim.url });
}

/** Long-polls a tenant result queue with a few loops, deleting as it goes; resolves waiters by request id. */
function resultConsumer(sqs: SQSClient, queueUrl: string) {
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
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    stop() {
      running = false;
      return Promise.allSettled(loops);
    },
  };
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (isMainThread && import.meta.url === `file://${process.argv[1]}`) {
  const json = process.argv.includes("--json");
  const result = await runThroughputBench({
    ...(flag("requests") ? { requests: Number(flag("requests")) } : {}),
    ...(flag("max-tokens") ? { maxTokens: Number(flag("max-tokens")) } : {}),
    ...(flag("time-scale") ? { timeScale: Number(flag("time-scale")) } : {}),
    ...(flag("max-in-flight") ? { maxInFlight: Number(flag("max-in-flight")) } : {}),
    ...(flag("batch-wait-ms") ? { batchWaitMs: Number(flag("batch-wait-ms")) } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${json ? JSON.stringify(result, null, 2) : summary(result)}\n`);
  process.exit(0);
}

function summary(r: ThroughputBenchResult): string {
  const s = r.lowLoad.stages;
  return [
    `direct (best of ${r.direct.byConcurrency.map((c) => c.concurrency).join("/")}): ${r.direct.best.requestsPerSecond} req/s at concurrency ${r.direct.best.concurrency}`,
    `pipeline: ${r.pipeline.requestsPerSecond} req/s (K=${r.pipeline.maxInFlight}, wait ${r.pipeline.batchWaitMs} ms, ${r.pipeline.meanPromptsPerCall} prompts per call)`,
    `ratio ${r.ratio} (goal ≥ 0.9: ${r.goalMet ? "met" : "missed"})`,
    `low load: direct ${r.lowLoad.directMs} ms, pipeline ${r.lowLoad.pipelineMs} ms, added ${r.lowLoad.addedMs} ms`,
    `  cache: queue ${s.cache.queueWaitMs} ms + handler ${s.cache.handlerMs} ms; batcher: queue ${s.batcher.queueWaitMs} ms + handler ${s.batcher.handlerMs} ms (+ model ${s.modelMs} ms); deliver: queue ${s.deliver.queueWaitMs} ms + handler ${s.deliver.handlerMs} ms`,
  ].join("\n");
}
