/**
 * The capacity benchmark: can the pipeline keep a fast model busy, and what
 * does each request cost in CPU? Every part runs in a process of its own,
 * started from the `deepqueue` CLI — the SQS emulator, the DynamoDB
 * emulator, the simulator, and either each function as `deepqueue serve
 * <fn>` ("split", as on Kubernetes) or everything under one `deepqueue dev`
 * ("npm start") — and is measured from /proc: its own CPU time and peak RSS.
 *
 * The yardstick is one bare `SendMessage` through the same AWS SDK against
 * the same emulator, measured in the same run: machines differ, ratios hold.
 *
 * `npx tsx bench/capacity.ts [--mode split|dev] [--profile fast|instant] [--requests 300] [--concurrency 64] [--compiled]`
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { FUNCTION_NAMES, type FunctionName } from "../functions/runtime/serve.ts";

/** The functions every request passes through (or may): the goal's "four functions". */
const PIPELINE_FUNCTIONS: readonly FunctionName[] = ["ingest", "cache", "batcher", "deliver"];

import { bootstrap } from "../functions/shared/bootstrap.ts";
import { createDynamoBaseClient, createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { newApiKey } from "../functions/shared/ids.ts";
import { createInferenceClient } from "../functions/shared/inference-client.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { BenchError } from "./errors.ts";
import { closedLoop, createHttpClient } from "./load.ts";
import { startPipelineClient } from "./pipeline.ts";
import {
  type CliProcess,
  commandLine,
  cpuMs,
  descendants,
  peakRssMiB,
  spawnCli,
  waitForHttp,
} from "./procs.ts";
import { freePort, REPO_ROOT } from "./stack.ts";
import { percentile, round, summarize } from "./stats.ts";

/** Simulator profiles: `fast` answers ≥ 50 short requests per second (a small model on an H100-class GPU), `instant` takes no time at all. */
const CAPACITY_PROFILES = {
  fast: { timeScale: 1, maxNumSeqs: 64, maxTokens: 32 },
  instant: { timeScale: 0, maxNumSeqs: 256, maxTokens: 32 },
} as const;
export type CapacityProfile = keyof typeof CAPACITY_PROFILES;

export type CapacityMode = "split" | "dev";

export interface CapacityOptions {
  mode?: CapacityMode;
  profile?: CapacityProfile;
  /** Requests through the pipeline (and straight to the model). @default 300 */
  requests?: number;
  /** Producers posting at once, and the direct run's concurrency. @default 64 */
  concurrency?: number;
  /** Run the compiled build (`npm run build` first) rather than the sources through tsx. @default false */
  compiled?: boolean;
  /** Extra environment for the function processes (e.g. `NODE_OPTIONS: "--cpu-prof"`). */
  functionEnv?: Record<string, string>;
  /** Extra environment for the emulators' processes, split mode (e.g. `NODE_OPTIONS: "--cpu-prof"`). */
  emulatorEnv?: Record<string, string>;
  /**
   * Requests through the pipeline before anything is measured: a fresh process's first few hundred
   * requests run unoptimized code (V8 compiles the hot paths as they warm) and open connections, in
   * the functions and the emulators alike. @default 400
   */
  warmup?: number;
  /** Bare sends for the yardstick. @default 400 */
  yardstickSends?: number;
  log?: (line: string) => void;
}

export interface CapacityResult {
  mode: CapacityMode;
  profile: CapacityProfile;
  compiled: boolean;
  requests: number;
  /** Requests through the pipeline before the measured run. */
  warmup: number;
  concurrency: number;
  direct: { requestsPerSecond: number };
  pipeline: { requestsPerSecond: number; completed: number; failed: number; seconds: number };
  /** pipeline ÷ direct. */
  ratio: number;
  /**
   * Time to 202 while the model is saturated: producers post, wait for the result, post again.
   * p50/p99 over the posts after the ramp-up (`samples` of them); `withRamp` over all.
   */
  accept: {
    p50Ms: number;
    p99Ms: number;
    samples: number;
    withRamp: { p50Ms: number; p99Ms: number };
    /** Ingest's own accept-latency histogram for the same requests: cumulative counts by bucket (s). */
    ingestSideBuckets: Record<string, number>;
    /** This process's CPU per request in that phase (the producers and the result consumer). */
    loadGeneratorCpuMs: number;
    /** Ingest's own CPU per request in that phase. */
    ingestCpuMs: number;
    /** Ingest's AWS calls in that phase, by service:operation: count and duration (from its histogram). */
    ingestAwsCalls: Record<string, { calls: number; p50Ms: number; p99Ms: number }>;
  };
  /** Time to 202 while building the backlog (producers post back to back: ingest at its limit). */
  burstAccept: { p50Ms: number; p99Ms: number; requestsPerSecond: number };
  /** CPU ms one bare SendMessage costs the sending process (bench/yardstick.ts, a process of its own). */
  yardstickCpuMs: number;
  /** The yardstick's two measurements (before the run, after it) that yardstickCpuMs averages. */
  yardstickRunsCpuMs: number[];
  /** CPU ms per pipeline request, by process (functions, emulators, simulator, dev's own). */
  cpuMsPerRequest: Record<string, number>;
  /** The four functions' CPU per request, summed, in ms and in bare sends. */
  functionsCpuMs: number;
  functionsInBareSends: number;
  /** Requests per second the functions move per CPU core they use (1000 ÷ functionsCpuMs). */
  requestsPerCore: number;
  /** AWS SDK calls per pipeline request, by function and operation (from deepqueue_aws_calls_total). */
  awsCallsPerRequest: Record<string, Record<string, number>>;
  /** `deepqueue serve <fn>` started fresh until /healthz answers 200, ms (split mode). */
  coldStartMs: Record<string, number>;
  /** How long each function took to load the DeepSeek tokenizer (after it was ready), ms. */
  tokenizerLoadMs: Record<string, number>;
  /** Peak RSS (VmHWM) per process, MiB. */
  peakRssMiB: Record<string, number>;
  notes: string[];
}

/**
 * The saturated phase's producers start over this long (a ramp-up, as load tools have), not all
 * in one instant: started together, all 64 requests enter the model in one step, end in one step,
 * and the next 64 posts land on ingest together, wave after wave — a lockstep that producers
 * independent of each other do not keep. 1 s is under one of the fast profile's answers (~1.2 s).
 * Accept p50/p99 count the posts after the ramp, when all producers post and the model is full;
 * the result gives the figures with the ramp's posts too.
 */
const SATURATED_RAMP_MS = 1000;

/**
 * Warm-up requests before the measured run. With 48, the same code measured about 25 % more CPU per
 * request (functions and emulators alike) over a 600-request run: the steady state is what sizes a
 * replica; a new process's first requests are part of its cold start.
 */
const DEFAULT_WARMUP = 400;

const PROMPT = "Explain in two sentences how a message queue smooths bursts of inference traffic.";

interface Started {
  /** Process by role: sqs, dynamodb, simulator, ingest, cache, batcher, deliver, dev. */
  procs: Map<string, number>;
  /** Each function's /metrics URL. */
  metricsUrls: Map<string, string>;
  ingestUrl: string;
  stopAll(): Promise<void>;
}

/** Which function (or emulator) a `deepqueue` process is, from its command line. */
function roleOf(cmd: string): string | undefined {
  const serve = / serve (ingest|cache|batcher|deliver)\b/.exec(cmd);
  if (serve) return serve[1];
  if (/ emulators .*--only sqs/.test(cmd)) return "sqs";
  if (/ emulators .*--only dynamodb/.test(cmd)) return "dynamodb";
  if (/ sim\b/.test(cmd)) return "simulator";
  return undefined;
}

/**
 * @example const r = await runCapacityBench({ mode: "split", profile: "fast" }); console.log(r.ratio);
 */
export async function runCapacityBench(options: CapacityOptions = {}): Promise<CapacityResult> {
  const mode = options.mode ?? "split";
  const profileName = options.profile ?? "fast";
  const profile = CAPACITY_PROFILES[profileName];
  const n = options.requests ?? 300;
  const concurrency = options.concurrency ?? 64;
  const compiled = options.compiled ?? false;
  const warmup = options.warmup ?? DEFAULT_WARMUP;
  const log = options.log ?? (() => undefined);
  const notes: string[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), "deepqueue-capacity-"));
  const children: CliProcess[] = [];
  const spawn = (name: string, args: string[], env: Record<string, string> = {}) => {
    const proc = spawnCli({
      repoRoot: REPO_ROOT,
      compiled,
      args,
      env: { LOG_LEVEL: "warn", DEEPQUEUE_DATA_DIR: dataDir, ...env },
      logFile: join(dataDir, `${name}.log`),
    });
    children.push(proc);
    return proc;
  };
  const stopChildren = async () => {
    for (const child of children.reverse()) await child.stop("SIGTERM");
  };

  const [sqsPort, dynamoPort, simPort, ingestPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const sqsEndpoint = `http://127.0.0.1:${sqsPort}`;
  const dynamoEndpoint = `http://127.0.0.1:${dynamoPort}`;
  const simUrl = `http://127.0.0.1:${simPort}/v1`;
  const prefix = "capacity";
  const apiKey = newApiKey();
  const awsEnv = {
    AWS_ENDPOINT_URL_SQS: sqsEndpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_REGION: "us-east-1",
    DEEPQUEUE_PREFIX: prefix,
  };
  const sqs = createSqsClient({ endpoint: sqsEndpoint });
  const http = createHttpClient(concurrency * 2);
  let started: Started | undefined;
  try {
    // The simulator is the bench's own in both modes (dev is told INFERENCE_URL), so the direct run
    // and the pipeline see the same one.
    const sim = spawn("simulator", [
      "sim",
      "--port",
      String(simPort),
      "--time-scale",
      String(profile.timeScale),
      "--max-num-seqs",
      String(profile.maxNumSeqs),
    ]);
    const procs = new Map<string, number>([["simulator", sim.pid]]);
    const metricsUrls = new Map<string, string>();
    const fnEnv = {
      ...awsEnv,
      INFERENCE_URL: simUrl,
      DEEPQUEUE_FALLBACK_MODEL: "deepseek-chat-small",
      DEEPQUEUE_DEV_MODE: "true",
      // The bench tenant is one tenant posting hundreds a second: the per-tenant rate limit is off.
      DEEPQUEUE_RATE_LIMIT_PER_SECOND: "0",
      // …and so is the abuse budget: the scale scenario posts oversized prompts on purpose.
      DEEPQUEUE_ABUSE_BUDGET: "0",
      LOG_LEVEL: "info",
      ...(options.functionEnv ?? {}),
    };
    let tenantName = "capacity";
    if (mode === "split") {
      const sqsEmu = spawn(
        "sqs",
        ["emulators", "--only", "sqs", "--in-memory", "--sqs-port", String(sqsPort)],
        options.emulatorEnv,
      );
      const ddbEmu = spawn(
        "dynamodb",
        ["emulators", "--only", "dynamodb", "--in-memory", "--dynamodb-port", String(dynamoPort)],
        options.emulatorEnv,
      );
      await Promise.all([waitForTcp(sqsPort), waitForTcp(dynamoPort)]);
      procs.set("sqs", sqsEmu.pid);
      procs.set("dynamodb", ddbEmu.pid);
    } else {
      // `npm start` as a user runs it, on free ports: its own emulators and functions.
      const metricsPort = await freePort();
      const dev = spawn(
        "dev",
        [
          "dev",
          "--ingest-port",
          String(ingestPort),
          "--sqs-port",
          String(sqsPort),
          "--dynamodb-port",
          String(dynamoPort),
          "--metrics-port",
          String(metricsPort),
        ],
        { ...fnEnv, DEEPQUEUE_DEV_API_KEY: apiKey },
      );
      procs.set("dev", dev.pid);
      await waitForHttp(dev, `http://127.0.0.1:${ingestPort}/healthz`);
      for (const pid of descendants(dev.pid)) {
        const role = roleOf(commandLine(pid));
        if (role) procs.set(role, pid);
      }
      for (const [n, fn] of ["cache", "batcher", "deliver", "ingest"].entries()) {
        metricsUrls.set(fn, `http://127.0.0.1:${metricsPort + n}/metrics`);
      }
      tenantName = "dev";
    }
    await waitForHttp(sim, `http://127.0.0.1:${simPort}/health`);

    // ---- direct: the same requests straight to the simulator.
    const client = createInferenceClient({
      baseUrl: simUrl,
      retries: 0,
      timeoutMs: 120_000,
      maxConcurrency: 4096,
    });
    const direct = async (count: number) => {
      const t0 = performance.now();
      await closedLoop({
        concurrency,
        total: count,
        task: (i) =>
          client.completions({
            model: "deepseek-chat",
            prompt: `[direct ${i}] ${PROMPT}`,
            max_tokens: profile.maxTokens,
            temperature: 0.7,
          }),
      });
      return count / ((performance.now() - t0) / 1000);
    };
    await direct(Math.min(64, n));
    const directRps = await direct(n);
    log(`direct: ${round(directRps)} req/s`);

    // ---- the tenant, and the yardstick: one bare SendMessage, from this process, same emulator.
    const { CreateQueueCommand, GetQueueUrlCommand, PurgeQueueCommand } = await import("@aws-sdk/client-sqs");
    let resultQueueUrl: string;
    if (mode === "split") {
      const ddb = createDynamoClient({ endpoint: dynamoEndpoint });
      const dynamo = createDynamoBaseClient({ endpoint: dynamoEndpoint });
      await bootstrap({ sqs, dynamo, prefix });
      const tenant = await provisionTenant(
        { sqs, tenants: new DynamoTenantStore(ddb, prefix), prefix },
        { tenant: tenantName, apiKey, dailyRequests: null, dailyTokens: null },
      );
      resultQueueUrl = tenant.result_queue_url;
      ddb.destroy();
      dynamo.destroy();
    } else {
      const out = await sqs.send(new GetQueueUrlCommand({ QueueName: `${prefix}-results-${tenantName}` }));
      resultQueueUrl = out.QueueUrl!;
    }
    const yard = await sqs.send(new CreateQueueCommand({ QueueName: `${prefix}-yardstick` }));
    // The yardstick is measured before the run and again after it, and the two averaged: this
    // machine's speed drifts by ±20 % within minutes, and one short measurement caught it at one moment.
    const yardstick = async () => {
      const ms = measureYardstick(sqsEndpoint, yard.QueueUrl!, options.yardstickSends ?? 400);
      await sqs.send(new PurgeQueueCommand({ QueueUrl: yard.QueueUrl })).catch(() => undefined);
      log(`yardstick: ${round(ms)} CPU ms per bare SendMessage`);
      return ms;
    };
    const yardstickBefore = await yardstick();

    // ---- the functions, each `deepqueue serve <fn>` (split mode; dev started its own)
    if (mode === "split") {
      const ready: Array<Promise<void>> = [];
      for (const name of FUNCTION_NAMES) {
        // Every function, ingest too, serves /healthz and /metrics on a port of its own.
        const port = await freePort();
        const proc = spawn(name, ["serve", name], {
          ...fnEnv,
          PORT: String(ingestPort),
          DEEPQUEUE_WORKER_METRICS_PORT: String(port),
        });
        procs.set(name, proc.pid);
        metricsUrls.set(name, `http://127.0.0.1:${port}/metrics`);
        ready.push(waitForHttp(proc, `http://127.0.0.1:${port}/healthz`));
      }
      await Promise.all(ready);
    }
    started = { procs, metricsUrls, ingestUrl: `http://127.0.0.1:${ingestPort}`, stopAll: stopChildren };

    const pipeline = startPipelineClient({
      http,
      sqs,
      ingestUrl: started.ingestUrl,
      apiKey,
      resultQueueUrl,
    });
    const body = (i: number, run: string) => ({
      prompt: `[${run} ${i}] ${PROMPT}`,
      max_tokens: profile.maxTokens,
      temperature: 0.7,
    });
    // Warm-up: JIT, connections, queue URLs.
    await closedLoop({
      concurrency: 16,
      total: warmup,
      task: (i) => pipeline.answer(body(i, "warm"), 60_000),
    });

    const callsBefore = await scrapeCalls(http, metricsUrls);
    const before = new Map([...procs].map(([role, pid]) => [role, cpuMs(pid) ?? 0]));
    // A backlog, as producers make one when the model is the slower part: `concurrency` producers
    // post as fast as ingest accepts (each its next request once the last got its 202), while the
    // results are taken off the tenant's queue. The pipeline keeps the model busy from the backlog;
    // throughput is requests ÷ (first post → last result).
    const t0 = performance.now();
    const posted = await closedLoop({ concurrency, total: n, task: (i) => pipeline.submit(body(i, "run")) });
    const acceptedAt = performance.now();
    const run = {
      results: await Promise.all(posted.results.map((submitted) => pipeline.waitFor(submitted, 300_000))),
    };
    const seconds = (performance.now() - t0) / 1000;
    const callsAfter = await scrapeCalls(http, metricsUrls);
    const awsCallsPerRequest: Record<string, Record<string, number>> = {};
    for (const [fn, ops] of callsAfter) {
      const per: Record<string, number> = {};
      let total = 0;
      for (const [op, count] of ops) {
        const delta = (count - (callsBefore.get(fn)?.get(op) ?? 0)) / n;
        if (delta > 0) per[op] = Number(delta.toFixed(3));
        total += delta;
      }
      per.total = Number(total.toFixed(3));
      awsCallsPerRequest[fn] = per;
    }
    const cpuMsPerRequest: Record<string, number> = {};
    const peak: Record<string, number> = {};
    for (const [role, pid] of procs) {
      cpuMsPerRequest[role] = round(((cpuMs(pid) ?? 0) - (before.get(role) ?? 0)) / n);
      const rss = peakRssMiB(pid);
      if (rss !== undefined) peak[role] = round(rss);
    }
    const burstAccepts = run.results.map((r) => r.acceptMs).sort((a, b) => a - b);
    // Accept latency while the model is saturated: producers that each post, wait for the result,
    // and post again — what a producer waits for its 202 while the pipeline works at capacity.
    const ingestMetricsUrl = metricsUrls.get("ingest") ?? metricsUrls.get("dev");
    const ingestBefore = await scrapeIngestHistograms(http, ingestMetricsUrl);
    const benchCpuBefore = process.cpuUsage();
    const ingestPid = procs.get("ingest");
    const ingestCpuBefore = ingestPid ? (cpuMs(ingestPid) ?? 0) : 0;
    const phaseStart = Date.now();
    const saturated = await closedLoop({
      concurrency,
      rampMs: SATURATED_RAMP_MS,
      total: Math.min(n, Math.max(concurrency * 4, Math.round(n / 2))),
      task: async (i) => pipeline.waitFor(await pipeline.submit(body(i, "sat")), 300_000),
    });
    // While saturated: posts after the ramp, once all producers are posting (before, the model
    // fills and ingest wakes from the backlog phase's idle: its tenant entry may have expired).
    const steady = summarize(
      saturated.results.filter((r) => r.startedAt - phaseStart >= SATURATED_RAMP_MS).map((r) => r.acceptMs),
    );
    const withRamp = summarize(saturated.results.map((r) => r.acceptMs));
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const ingestCpuMs = ingestPid
      ? ((cpuMs(ingestPid) ?? 0) - ingestCpuBefore) / saturated.results.length
      : 0;
    const ingestAfter = await scrapeIngestHistograms(http, ingestMetricsUrl);
    const ingestAwsCalls: Record<string, { calls: number; p50Ms: number; p99Ms: number }> = {};
    for (const [op, after] of ingestAfter.awsCalls) {
      const before = ingestBefore.awsCalls.get(op) ?? new Map<number, number>();
      const delta = [...after].map(([le, n]) => [le, n - (before.get(le) ?? 0)] as [number, number]);
      const calls = delta.at(-1)?.[1] ?? 0;
      if (calls > 0) {
        ingestAwsCalls[op] = {
          calls,
          p50Ms: round(bucketPercentile(delta, 0.5) * 1000),
          p99Ms: round(bucketPercentile(delta, 0.99) * 1000),
        };
      }
    }
    const loadGeneratorCpuMs = (benchCpu.user + benchCpu.system) / 1000 / saturated.results.length;
    const yardstickAfter = await yardstick();
    const yardstickCpuMs = (yardstickBefore + yardstickAfter) / 2;
    const ingestSide = Object.fromEntries(
      [...ingestAfter.accept].map(([le, n]) => [le, n - (ingestBefore.accept.get(le) ?? 0)]),
    );
    await pipeline.stop();
    const tokenizerLoadMs: Record<string, number> = {};
    for (const [fn, url] of metricsUrls) {
      const text = (await http.request(url, { timeoutMs: 5000 })).body;
      const m = /^deepqueue_tokenizer_load_seconds (\S+)/m.exec(text);
      if (m) tokenizerLoadMs[fn] = Math.round(Number(m[1]) * 1000);
    }
    const coldStartMs =
      mode === "split"
        ? await measureColdStarts({ compiled, env: { ...fnEnv, LOG_LEVEL: "warn" }, dataDir })
        : {};
    const completed = run.results.filter((r) => r.result).length;
    const pipelineRps = completed / seconds;
    // The four functions a request passes through; the batch worker (POST /v1/batches) idles in
    // this run and is reported on its own.
    const functionsCpuMs = round(
      PIPELINE_FUNCTIONS.reduce((sum, name) => sum + (cpuMsPerRequest[name] ?? 0), 0) +
        (mode === "dev" ? (cpuMsPerRequest.dev ?? 0) : 0),
    );
    if (mode === "dev") notes.push("dev's own process (the parent) is counted with the functions.");
    notes.push(
      `The batch worker idles here (no batches): ${cpuMsPerRequest.batches ?? "–"} CPU ms per request, its queue gauges and long polls; not counted with the four functions.`,
    );
    notes.push(
      `Accept while saturated: ${concurrency} producers each post, wait for the result and post again (${saturated.results.length} posts); they start over ${SATURATED_RAMP_MS / 1000} s (a ramp-up), not in one instant. Accept p50/p99 count the ${steady.count} posts after the ramp; with the ramp's: p50 ${round(withRamp.p50)} ms, p99 ${round(withRamp.p99)} ms.`,
    );
    notes.push(
      `A backlog: after ${warmup} warm-up requests, ${concurrency} producers posted ${n} requests back to back (all accepted in ${round((acceptedAt - t0) / 1000)} s), the pipeline worked them off; throughput counts from the first post to the last result on the tenant's queue. The direct run calls the simulator with the same requests at the same concurrency.`,
    );
    return {
      mode,
      profile: profileName,
      compiled,
      requests: n,
      warmup,
      concurrency,
      direct: { requestsPerSecond: round(directRps) },
      pipeline: {
        requestsPerSecond: round(pipelineRps),
        completed,
        failed: run.results.length - completed,
        seconds: round(seconds),
      },
      ratio: round(pipelineRps / directRps),
      accept: {
        p50Ms: round(steady.p50),
        p99Ms: round(steady.p99),
        samples: steady.count,
        withRamp: { p50Ms: round(withRamp.p50), p99Ms: round(withRamp.p99) },
        ingestSideBuckets: ingestSide,
        loadGeneratorCpuMs: round(loadGeneratorCpuMs),
        ingestCpuMs: round(ingestCpuMs),
        ingestAwsCalls,
      },
      burstAccept: {
        p50Ms: round(percentile(burstAccepts, 0.5)),
        p99Ms: round(percentile(burstAccepts, 0.99)),
        requestsPerSecond: round(n / ((acceptedAt - t0) / 1000)),
      },
      yardstickCpuMs: round(yardstickCpuMs),
      yardstickRunsCpuMs: [round(yardstickBefore), round(yardstickAfter)],
      cpuMsPerRequest,
      functionsCpuMs,
      functionsInBareSends: round(functionsCpuMs / yardstickCpuMs),
      requestsPerCore: round(1000 / functionsCpuMs),
      awsCallsPerRequest,
      coldStartMs,
      tokenizerLoadMs,
      peakRssMiB: peak,
      notes,
    };
  } finally {
    http.close();
    sqs.destroy();
    if (started) await started.stopAll();
    else await stopChildren();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * One scrape of ingest's /metrics: its accept-latency histogram (cumulative counts by bucket bound,
 * as written) and its AWS call-duration histogram (cumulative counts by bound in seconds, by
 * `service:operation`).
 */
async function scrapeIngestHistograms(
  http: ReturnType<typeof createHttpClient>,
  url: string | undefined,
): Promise<{ accept: Map<string, number>; awsCalls: Map<string, Map<number, number>> }> {
  const accept = new Map<string, number>();
  const awsCalls = new Map<string, Map<number, number>>();
  if (!url) return { accept, awsCalls };
  const { body } = await http.request(url, { timeoutMs: 5000 });
  for (const m of body.matchAll(/^deepqueue_ingest_accept_latency_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) {
    accept.set(m[1]!, Number(m[2]));
  }
  for (const m of body.matchAll(
    /^deepqueue_aws_call_duration_seconds_bucket\{le="([^"]+)",service="([^"]+)",operation="([^"]+)"\} (\d+)/gm,
  )) {
    const op = `${m[2]}:${m[3]}`;
    const buckets = awsCalls.get(op) ?? new Map<number, number>();
    buckets.set(m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[4]));
    awsCalls.set(op, buckets);
  }
  return { accept, awsCalls };
}

/** A percentile from cumulative histogram counts (ascending bounds), interpolated within its bucket. */
function bucketPercentile(cumulative: Array<[number, number]>, p: number): number {
  const total = cumulative.at(-1)?.[1] ?? 0;
  const want = total * p;
  let lower = 0;
  let below = 0;
  for (const [le, n] of cumulative) {
    if (n >= want) {
      if (!Number.isFinite(le)) return lower;
      return lower + ((want - below) / Math.max(1, n - below)) * (le - lower);
    }
    lower = le;
    below = n;
  }
  return lower;
}

/** deepqueue_aws_calls_total by function, then `service:operation`. */
async function scrapeCalls(
  http: ReturnType<typeof createHttpClient>,
  urls: Map<string, string>,
): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  for (const [fn, url] of urls) {
    const answer = await http.request(url, { timeoutMs: 5000 });
    const ops = new Map<string, number>();
    for (const m of answer.body.matchAll(
      /^deepqueue_aws_calls_total\{service="([^"]+)",operation="([^"]+)"\} (\d+)/gm,
    )) {
      ops.set(`${m[1]}:${m[2]}`, Number(m[3]));
    }
    out.set(fn, ops);
  }
  return out;
}

/** One bare SendMessage's CPU, measured by bench/yardstick.ts in a process of its own. */
function measureYardstick(endpoint: string, queueUrl: string, sends: number): number {
  const out = spawnSync(
    process.execPath,
    ["--import", "tsx", join(REPO_ROOT, "bench/yardstick.ts"), endpoint, queueUrl, String(sends)],
    { cwd: REPO_ROOT, encoding: "utf8", timeout: 120_000 },
  );
  if (out.status !== 0) throw new BenchError(`yardstick failed: ${(out.stderr ?? "").slice(-300)}`);
  return (JSON.parse(out.stdout.trim().split("\n").pop()!) as { cpuMsPerSend: number }).cpuMsPerSend;
}

async function waitForTcp(port: number, timeoutMs = 60_000): Promise<void> {
  const { connect } = await import("node:net");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(20);
  }
  throw new BenchError(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/**
 * Cold start: `deepqueue serve <fn>` from a fresh process until /healthz answers 200, against
 * running emulators (which the caller provides). Milliseconds per function.
 */
async function measureColdStarts(options: {
  compiled: boolean;
  env: Record<string, string>;
  dataDir: string;
  functions?: readonly FunctionName[];
}): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of options.functions ?? FUNCTION_NAMES) {
    const port = await freePort();
    const t0 = performance.now();
    const proc = spawnCli({
      repoRoot: REPO_ROOT,
      compiled: options.compiled,
      args: ["serve", name],
      env: { ...options.env, PORT: String(port), DEEPQUEUE_WORKER_METRICS_PORT: String(port) },
      logFile: join(options.dataDir, `cold-${name}.log`),
    });
    try {
      await waitForHttp(proc, `http://127.0.0.1:${port}/healthz`);
      out[name] = Math.round(performance.now() - t0);
    } finally {
      await proc.stop("SIGKILL");
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      mode: { type: "string", default: "split" },
      profile: { type: "string", default: "fast" },
      requests: { type: "string", default: "300" },
      concurrency: { type: "string", default: "64" },
      compiled: { type: "boolean", default: false },
      warmup: { type: "string", default: String(DEFAULT_WARMUP) },
    },
  });
  const result = await runCapacityBench({
    mode: values.mode as CapacityMode,
    profile: values.profile as CapacityProfile,
    requests: Number(values.requests),
    concurrency: Number(values.concurrency),
    compiled: values.compiled,
    warmup: Number(values.warmup),
    ...(process.env.CAPACITY_FUNCTION_NODE_OPTIONS
      ? { functionEnv: { NODE_OPTIONS: process.env.CAPACITY_FUNCTION_NODE_OPTIONS } }
      : {}),
    ...(process.env.CAPACITY_EMULATOR_NODE_OPTIONS
      ? { emulatorEnv: { NODE_OPTIONS: process.env.CAPACITY_EMULATOR_NODE_OPTIONS } }
      : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
