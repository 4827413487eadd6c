/**
 * The ingest benchmark: requests/s and p50/p99 accept latency of
 * `POST /v1/requests` (auth, validation with the DeepSeek tokenizer, quota,
 * record write, requests-queue send) next to the floor — a bare handler
 * behind the same HTTP adapter that only sends one SQS message — reported as
 * a ratio. Both run as their own process (as their containers would) against
 * in-process emulators, driven by autocannon on loopback for a bounded time.
 *
 * `npx tsx bench/ingest.ts [--duration 5] [--connections 16] [--json]`
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { cpus } from "node:os";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { GetQueueUrlCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { bootstrap } from "../functions/shared/bootstrap.ts";
import { createDynamoBaseClient, createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { queueName } from "../functions/shared/names.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { startEmulators } from "../local/emulators.ts";
import { BenchError } from "./errors.ts";

export interface IngestBenchOptions {
  /** Measured seconds per target (after a 1 s warm-up). @default 5 */
  durationSeconds?: number;
  /** Concurrent keep-alive connections. @default 16 */
  connections?: number;
  /** Progress lines (e.g. console.error). */
  log?: (line: string) => void;
}

export interface IngestBenchMeasure {
  requestsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** The target process's own CPU per measured request, ms: the function's cost without the emulators'. */
  cpuMsPerRequest: number;
}

export interface IngestBenchResult {
  durationSeconds: number;
  connections: number;
  cpus: number;
  /** The full ingest function. */
  ingest: IngestBenchMeasure;
  /** A bare handler sending one SQS message per request, behind the same HTTP adapter. */
  floor: IngestBenchMeasure;
  /** ingest ÷ floor: throughput below 1 and latency above 1 is ingest's own cost. */
  ratio: { throughput: number; p50: number; p99: number; cpuPerRequest: number };
  notes: string[];
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p90: number; p99: number };
  non2xx: number;
  errors: number;
  "2xx": number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

const BODY = JSON.stringify({
  prompt:
    "Summarise in two sentences why queue-based inference pipelines absorb traffic bursts better than synchronous model calls.",
  max_tokens: 256,
  temperature: 0,
});

/** Spawns one target (`ingest` or `floor`) as its own process; resolves with its URL once it listens. */
async function startTarget(
  kind: "ingest" | "floor",
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess; cpuMs: Promise<number> }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), "--serve", kind],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines = createInterface({ input: child.stdout! });
  let reportCpu: (ms: number) => void = () => {};
  const cpuMs = new Promise<number>((resolve) => {
    reportCpu = resolve;
    child.once("exit", () => resolve(Number.NaN));
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) =>
      reject(new BenchError(`${kind} target exited with ${code} before listening`)),
    );
    lines.on("line", (line) => {
      const listening = line.match(/^listening (\S+)$/);
      if (listening?.[1]) resolve(listening[1]);
      const cpu = line.match(/^cpu-ms (\S+)$/);
      if (cpu?.[1]) reportCpu(Number(cpu[1]));
    });
  });
  return { url, child, cpuMs };
}

async function stopTarget(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  await exited;
}

async function measure(
  child: ChildProcess,
  url: string,
  apiKey: string,
  durationSeconds: number,
  connections: number,
): Promise<{ measure: Omit<IngestBenchMeasure, "cpuMsPerRequest">; servedRequests: number }> {
  const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;
  const request = {
    url: `${url}/v1/requests`,
    method: "POST",
    connections,
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    body: BODY,
  };
  await autocannon({ ...request, duration: 1 }); // warm-up: JIT, tokenizer, SDK connection pools
  child.kill("SIGUSR2");
  await sleep(100);
  const out = await autocannon({ ...request, duration: durationSeconds });
  return {
    measure: {
      requestsPerSecond: round(out.requests.average),
      p50Ms: out.latency.p50,
      p90Ms: out.latency.p90,
      p99Ms: out.latency.p99,
      requests: out.requests.total,
      non2xx: out.non2xx,
      errors: out.errors,
    },
    servedRequests: out.requests.total,
  };
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * Runs the ingest benchmark end to end (emulators, both targets, load) and
 * cleans up; about 2 × (duration + 1) s plus start-up.
 *
 * @example const result = await runIngestBench({ durationSeconds: 5 });
 */
export async function runIngestBench(options: IngestBenchOptions = {}): Promise<IngestBenchResult> {
  const durationSeconds = options.durationSeconds ?? 5;
  const connections = options.connections ?? 16;
  const log = options.log ?? (() => {});
  const emulators = await startEmulators({ sqsPort: 0, dynamoPort: 0 });
  const sqs = createSqsClient({ endpoint: emulators.sqsEndpoint });
  const dynamo = createDynamoBaseClient({ endpoint: emulators.dynamoEndpoint });
  const ddb = createDynamoClient({ endpoint: emulators.dynamoEndpoint });
  const prefix = "benchingest";
  const children: ChildProcess[] = [];
  try {
    await bootstrap({ sqs, dynamo, prefix });
    const tenant = await provisionTenant(
      { sqs, tenants: new DynamoTenantStore(ddb, prefix), prefix },
      // A (large) quota, so the usage counter's conditional write is part of every accept, as for real tenants.
      { tenant: "bench", dailyRequests: 100_000_000, dailyTokens: null },
    );
    const env = {
      ...emulators.env,
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      DEEPQUEUE_PREFIX: prefix,
      DEEPQUEUE_DEV_MODE: "true",
      LOG_LEVEL: "silent",
    };
    const results: Partial<Record<"ingest" | "floor", IngestBenchMeasure>> = {};
    for (const kind of ["floor", "ingest"] as const) {
      log(`ingest bench: ${kind}, ${connections} connections, ${durationSeconds} s`);
      const target = await startTarget(kind, env);
      children.push(target.child);
      const run = await measure(target.child, target.url, tenant.api_key, durationSeconds, connections);
      await stopTarget(target.child);
      const measured = {
        ...run.measure,
        cpuMsPerRequest: round((await target.cpuMs) / run.servedRequests, 3),
      };
      results[kind] = measured;
      log(
        `  ${kind}: ${measured.requestsPerSecond} req/s, p50 ${measured.p50Ms} ms, p99 ${measured.p99Ms} ms, ${measured.cpuMsPerRequest} CPU ms/request`,
      );
    }
    const ingest = results.ingest!;
    const floor = results.floor!;
    return {
      durationSeconds,
      connections,
      cpus: cpus().length,
      ingest,
      floor,
      ratio: {
        throughput: round(ingest.requestsPerSecond / floor.requestsPerSecond, 3),
        p50: round(ingest.p50Ms / Math.max(floor.p50Ms, 0.001), 3),
        p99: round(ingest.p99Ms / Math.max(floor.p99Ms, 0.001), 3),
        cpuPerRequest: round(ingest.cpuMsPerRequest / floor.cpuMsPerRequest, 3),
      },
      notes: [
        "emulators (fauxqs, dynalite) run in the benchmark process, each target in its own process, all on one machine",
        "ingest per request: API key (cached), tokenizer, usage UpdateItem (conditional), record PutItem, one SendMessage",
        "on two shared cores the emulators' CPU per operation bounds both targets' throughput: ingest makes three emulator calls per request, the floor one",
        "floor per request: one SendMessage, behind the same serveHttp adapter",
      ],
    };
  } finally {
    await Promise.all(children.map(stopTarget));
    sqs.destroy();
    dynamo.destroy();
    ddb.destroy();
    await emulators.stop();
  }
}

/** The process side of a target: serve it on a free loopback port and print its URL. */
async function serveTarget(kind: string): Promise<void> {
  const { serveHttp } = await import("../functions/runtime/http.ts");
  let handler: Parameters<typeof serveHttp>[0];
  if (kind === "ingest") {
    const { createIngestFromEnv } = await import("../functions/ingest/handler.ts");
    handler = createIngestFromEnv();
  } else {
    // An explicit endpoint, as ingest's deps pass it: otherwise the SDK follows the QueueUrl's host.
    const sqs = createSqsClient({ endpoint: process.env.AWS_ENDPOINT_URL_SQS });
    const prefix = process.env.DEEPQUEUE_PREFIX ?? "deepqueue";
    const out = await sqs.send(new GetQueueUrlCommand({ QueueName: queueName(prefix, "requests") }));
    handler = async (event) => {
      await sqs.send(new SendMessageCommand({ QueueUrl: out.QueueUrl, MessageBody: event.body ?? "{}" }));
      return {
        statusCode: 202,
        headers: { "content-type": "application/json" },
        body: '{"status":"queued"}',
      };
    };
  }
  const server = await serveHttp(handler, { port: 0, host: "127.0.0.1", drainMs: 2000 });
  let cpuAtStart = process.cpuUsage();
  // The bench resets the baseline after its warm-up, so JIT and first-connection costs stay out.
  process.on("SIGUSR2", () => {
    cpuAtStart = process.cpuUsage();
  });
  process.once("SIGTERM", () => {
    // The target's own CPU (user + system) since it listened: what one request costs the function itself.
    const cpu = process.cpuUsage(cpuAtStart);
    process.stdout.write(`cpu-ms ${(cpu.user + cpu.system) / 1000}\n`);
    void server.close().then(() => process.exit(0));
  });
  process.stdout.write(`listening ${server.url}\n`);
}

function formatTable(result: IngestBenchResult): string {
  const row = (name: string, m: IngestBenchMeasure) =>
    `${name.padEnd(8)} ${String(m.requestsPerSecond).padStart(10)} ${String(m.p50Ms).padStart(8)} ${String(m.p99Ms).padStart(8)} ${String(m.cpuMsPerRequest).padStart(12)} ${String(m.non2xx + m.errors).padStart(8)}`;
  return [
    `ingest benchmark: ${result.connections} connections, ${result.durationSeconds} s per target, ${result.cpus} CPUs`,
    `${"target".padEnd(8)} ${"req/s".padStart(10)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"CPU ms/req".padStart(12)} ${"failed".padStart(8)}`,
    row("floor", result.floor),
    row("ingest", result.ingest),
    `ratio ingest/floor: throughput ${result.ratio.throughput}, p50 ${result.ratio.p50}, p99 ${result.ratio.p99}, CPU per request ${result.ratio.cpuPerRequest}`,
  ].join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      serve: { type: "string" },
      duration: { type: "string", default: "5" },
      connections: { type: "string", default: "16" },
      json: { type: "boolean" },
    },
  });
  if (values.serve) {
    await serveTarget(values.serve);
  } else {
    const result = await runIngestBench({
      durationSeconds: Number(values.duration),
      connections: Number(values.connections),
      log: (line) => console.error(line),
    });
    console.log(values.json ? JSON.stringify(result, null, 2) : formatTable(result));
  }
}
