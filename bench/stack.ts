import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import dynalite from "dynalite";
import { type FauxqsServer, startFauxqs } from "fauxqs";
import { FUNCTION_NODE_FLAGS } from "../functions/runtime/node-flags.ts";
import { FUNCTION_NAMES, type FunctionName } from "../functions/runtime/serve.ts";
import { bootstrap } from "../functions/shared/bootstrap.ts";
import { createDynamoBaseClient, createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { createS3Client } from "../functions/shared/s3-client.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import type { SimOptions } from "../local/sim/options.ts";
import { type Simulator, startSimulator } from "../local/sim/server.ts";
import { BenchError } from "./errors.ts";
import { createHttpClient } from "./load.ts";
import { rssMiB } from "./machine.ts";
import { type ModelProxy, startModelProxy } from "./model-proxy.ts";
import { stopChild } from "./procs.ts";

/**
 * The stack a bench run measures, started the way `deepqueue dev` composes it
 * (fauxqs + dynalite in this process, the simulator, bootstrap, a tenant, then
 * every function), with three differences a benchmark needs: every port is
 * free-picked and every datum lives in a temp folder; each function runs as
 * its own `deepqueue serve <name>` child process, as its container would (so
 * its RSS is its own, and the batcher can be restarted with other settings);
 * and the SQS emulator records a timestamp for every message sent and deleted
 * (fauxqs message spies), which is what the per-stage breakdown reads.
 */

export { FUNCTION_NAMES, type FunctionName };

export const BENCH_TENANT = "bench";
export const BENCH_PREFIX = "bench";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface FunctionProcess {
  name: FunctionName;
  pid: number;
  /** Ingest's HTTP URL; a worker's /healthz + /metrics URL. */
  url: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface BenchStack {
  simulator: Simulator;
  proxy: ModelProxy;
  /** The model URL everything (functions, direct load, the sync gateway) uses: the recording proxy. */
  modelUrl: string;
  sqs: SQSClient;
  dynamo: DynamoDBClient;
  spy: FauxqsServer["spy"];
  prefix: string;
  tenant: string;
  apiKey: string;
  resultQueueUrl: string;
  dataDir: string;
  /** Why the functions cannot run here, when they cannot. */
  functionsUnavailable?: string;
  functions: Map<FunctionName, FunctionProcess>;
  startFunction(name: FunctionName, extraEnv?: Record<string, string>): Promise<FunctionProcess>;
  /**
   * Stops a function: SIGTERM and its drain, or with `kill` at once (a restart
   * between scenarios, when nothing is in flight: a draining worker would
   * first finish its 20 s long poll).
   */
  stopFunction(name: FunctionName, options?: { kill?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export interface BenchStackOptions {
  simulator: Partial<SimOptions>;
  /** Log level of the functions. @default "warn" */
  logLevel?: string;
}

/** A free TCP port on 127.0.0.1 (the child process binds it right after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Why `deepqueue serve <name>` cannot run yet, or undefined when it can. */
export function functionsUnavailableReason(): string | undefined {
  const serveCommand = join(REPO_ROOT, "cli/commands/serve.ts");
  if (!existsSync(join(REPO_ROOT, "functions/runtime/serve.ts"))) {
    return "functions/runtime/serve.ts (serveFunction) has not landed";
  }
  if (!existsSync(serveCommand) || readFileSync(serveCommand, "utf8").includes("not built yet")) {
    return "`deepqueue serve` is still a placeholder";
  }
  const missing = FUNCTION_NAMES.filter((n) => !existsSync(join(REPO_ROOT, `functions/${n}/handler.ts`)));
  if (missing.length) return `functions not landed: ${missing.join(", ")}`;
  return undefined;
}

/** The emulators on free ports: fauxqs (SQS, with message spies) and dynalite (DynamoDB). */
async function startBenchEmulators(stops: Array<() => Promise<void>>) {
  const fauxqs = await startFauxqs({ port: 0, logger: false, messageSpies: { bufferSize: 20_000 } });
  stops.push(() => fauxqs.stop());
  const ddbServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((r, j) => {
    ddbServer.once("error", j);
    ddbServer.listen(0, "127.0.0.1", () => r());
  });
  stops.push(
    () =>
      new Promise<void>((r) => {
        ddbServer.close(() => r());
        (ddbServer as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  );
  return {
    sqsEndpoint: fauxqs.address,
    dynamoEndpoint: `http://127.0.0.1:${(ddbServer.address() as AddressInfo).port}`,
    spy: fauxqs.spy,
  };
}

/** What every function process reads: the emulators, the model proxy, and limits lifted for the bench. */
function benchEnv(
  endpoints: { sqsEndpoint: string; dynamoEndpoint: string },
  modelUrl: string,
  dataDir: string,
  logLevel: string | undefined,
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? tmpdir(),
    AWS_ENDPOINT_URL_SQS: endpoints.sqsEndpoint,
    // fauxqs serves S3 (the files bucket of the Batch API) on the SQS port.
    AWS_ENDPOINT_URL_S3: endpoints.sqsEndpoint,
    AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamoEndpoint,
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_REGION: "us-east-1",
    DEEPQUEUE_PREFIX: BENCH_PREFIX,
    INFERENCE_URL: modelUrl,
    DEEPQUEUE_FALLBACK_MODEL: "deepseek-chat-small",
    DEEPQUEUE_DEV_MODE: "true",
    // The capacity scenarios push one tenant far past the default per-tenant rate limit (100/s).
    DEEPQUEUE_RATE_LIMIT_PER_SECOND: "0",
    // …and so is the abuse budget: the scale scenario posts oversized prompts on purpose.
    DEEPQUEUE_ABUSE_BUDGET: "0",
    DEEPQUEUE_DATA_DIR: dataDir,
    LOG_LEVEL: logLevel ?? "warn",
  };
}

/** The functions as `deepqueue serve` processes, each on free ports, its output in the data folder. */
class BenchFunctions {
  readonly running = new Map<FunctionName, FunctionProcess>();
  readonly unavailable = functionsUnavailableReason();
  constructor(
    private readonly baseEnv: Record<string, string>,
    private readonly dataDir: string,
  ) {}

  async start(name: FunctionName, extraEnv: Record<string, string> = {}): Promise<FunctionProcess> {
    if (this.unavailable) throw new BenchError(this.unavailable);
    const port = await freePort();
    const metricsPort = await freePort();
    const started = await this.spawn(
      name,
      ["cli/index.ts", "serve", name],
      { PORT: String(port), DEEPQUEUE_WORKER_METRICS_PORT: String(metricsPort), ...extraEnv },
      name === "ingest" ? port : metricsPort,
    );
    const proc: FunctionProcess = { name, ...started };
    this.running.set(name, proc);
    // Measured runs start warm: a function loads the tokenizer just after it is ready (a one-off
    // cost, reported on its own), and a scenario starting within that second would pay it.
    if (name !== "deliver") await waitTokenizerLoaded(`http://127.0.0.1:${metricsPort}`, name);
    return proc;
  }

  async stop(name: FunctionName, options: { kill?: boolean } = {}): Promise<void> {
    const proc = this.running.get(name);
    this.running.delete(name);
    await proc?.stop(options.kill ? "SIGKILL" : "SIGTERM");
  }

  private async spawn(
    name: string,
    args: string[],
    env: Record<string, string>,
    healthPort: number,
  ): Promise<{ pid: number; url: string; stop(signal?: NodeJS.Signals): Promise<void> }> {
    const child = spawn(process.execPath, [...FUNCTION_NODE_FLAGS, "--import", "tsx", ...args], {
      cwd: REPO_ROOT,
      env: { ...this.baseEnv, ...env },
      // An IPC channel: when this process dies (a killed run, a timed-out test), the channel closes
      // and the child stops (deepqueue commands stop on disconnect) instead of staying an orphan.
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    const logFile = join(this.dataDir, `${name}.log`);
    const log = createWriteStream(logFile, { flags: "a" });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const url = `http://127.0.0.1:${healthPort}`;
    await waitHealthy(child, url, name, logFile);
    return { pid: child.pid!, url, stop: (signal) => stopChild(child, signal) };
  }
}

/** @example const stack = await startBenchStack({ simulator: { timeScale: 0.05 } }); … await stack.stop(); */
export async function startBenchStack(options: BenchStackOptions): Promise<BenchStack> {
  const dataDir = mkdtempSync(join(tmpdir(), "deepqueue-bench-"));
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const emulators = await startBenchEmulators(stops);
    const simulator = await startSimulator({ ...options.simulator, port: 0, host: "127.0.0.1" });
    stops.push(() => simulator.stop());
    const proxy = await startModelProxy(simulator.url);
    stops.push(() => proxy.stop());

    const sqs = createSqsClient({ endpoint: emulators.sqsEndpoint, region: "us-east-1" });
    const dynamo = createDynamoBaseClient({ endpoint: emulators.dynamoEndpoint, region: "us-east-1" });
    const ddb = createDynamoClient({ endpoint: emulators.dynamoEndpoint, region: "us-east-1" });
    stops.push(async () => {
      sqs.destroy();
      dynamo.destroy();
      ddb.destroy();
    });
    // fauxqs serves S3 (the files bucket of the Batch API) on the SQS port.
    const s3 = createS3Client({ endpoint: emulators.sqsEndpoint, region: "us-east-1" });
    await bootstrap({ sqs, dynamo, s3, prefix: BENCH_PREFIX }).finally(() => s3.destroy());
    const tenant = await provisionTenant(
      { sqs, tenants: new DynamoTenantStore(ddb, BENCH_PREFIX), prefix: BENCH_PREFIX },
      { tenant: BENCH_TENANT, dailyRequests: null, dailyTokens: null },
    );
    const functions = new BenchFunctions(benchEnv(emulators, proxy.url, dataDir, options.logLevel), dataDir);
    // At the end nothing is in flight and the data folder goes away: no drain needed.
    stops.push(async () => {
      await Promise.all([...functions.running.keys()].map((n) => functions.stop(n, { kill: true })));
    });
    return {
      simulator,
      proxy,
      modelUrl: proxy.url,
      sqs,
      dynamo,
      spy: emulators.spy,
      prefix: BENCH_PREFIX,
      tenant: BENCH_TENANT,
      apiKey: tenant.api_key,
      resultQueueUrl: tenant.result_queue_url,
      dataDir,
      ...(functions.unavailable ? { functionsUnavailable: functions.unavailable } : {}),
      functions: functions.running,
      startFunction: (name, extraEnv) => functions.start(name, extraEnv),
      stopFunction: (name, stopOptions) => functions.stop(name, stopOptions),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function waitHealthy(child: ChildProcess, url: string, name: string, logFile: string): Promise<void> {
  const http = createHttpClient(1);
  const deadline = Date.now() + 90_000;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        const tail = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-800) : "";
        throw new BenchError(`deepqueue serve ${name} exited with ${child.exitCode}: ${tail}`);
      }
      const answer = await http.request(`${url}/healthz`, { timeoutMs: 2000 });
      if (answer.status === 200) return;
      await sleep(250);
    }
    child.kill("SIGKILL");
    throw new BenchError(`deepqueue serve ${name} was not healthy within 90 s`);
  } finally {
    http.close();
  }
}

/** Waits until the function's /metrics shows its tokenizer loaded (deepqueue_tokenizer_load_seconds). */
async function waitTokenizerLoaded(url: string, name: string): Promise<void> {
  const http = createHttpClient(1);
  const deadline = Date.now() + 60_000;
  try {
    while (Date.now() < deadline) {
      const answer = await http.request(`${url}/metrics`, { timeoutMs: 2000 });
      // The gauge reads 0 until the load is done.
      const loaded = /^deepqueue_tokenizer_load_seconds (\S+)/m.exec(answer.body);
      if (loaded && Number(loaded[1]) > 0) return;
      await sleep(250);
    }
    throw new BenchError(`deepqueue serve ${name} had not loaded its tokenizer within 60 s`);
  } finally {
    http.close();
  }
}

/** RSS of a function's process in MiB (scenario 7). */
export function functionRss(proc: FunctionProcess): number | undefined {
  return rssMiB(proc.pid);
}
