import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { loadReconcilerEnv } from "../functions/reconciler/config.ts";
import { createReconcilerDeps } from "../functions/reconciler/deps.ts";
import { startReconcilerLoop } from "../functions/reconciler/reconciler.ts";
import { serveFunction } from "../functions/runtime/serve.ts";
import { bootstrap } from "../functions/shared/bootstrap.ts";
import { createDynamoBaseClient, createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { baseEnvSchema, loadEnv } from "../functions/shared/env.ts";
import { newApiKey } from "../functions/shared/ids.ts";
import { createLogger, type Logger } from "../functions/shared/logger.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { secretBoxFromEnv } from "../functions/shared/secret-box.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { DEV_PORTS, type Emulators, startEmulators } from "./emulators.ts";
import { type Simulator, startSimulator } from "./sim/server.ts";

/** SPEC §6 dev-mode ports. */
export const DEV_DEFAULT_PORTS = {
  ingest: 8080,
  sqs: DEV_PORTS.sqs,
  dynamo: DEV_PORTS.dynamo,
  sim: 8000,
  /** The workers' /healthz + /metrics: cache on this port, batcher +1, deliver +2; 0 = free ports. */
  metrics: 9091,
} as const;
export const DEV_TENANT = "dev";
/** The simulator's small model, used as the fallback (degradation level 2) when none is configured. */
export const DEV_FALLBACK_MODEL = "deepseek-chat-small";
const DEV_KEY_FILE = "dev-api-key";

export interface DevOptions {
  /** Ports; 0 picks free ones (tests). Defaults are SPEC §6's. */
  ports?: Partial<Record<keyof typeof DEV_DEFAULT_PORTS, number>>;
  /** Environment to read (defaults to process.env); dev writes the endpoints it starts back into it. */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Start the functions (ingest, cache, batcher, deliver, reconciler). @default true */
  functions?: boolean;
}

export interface DevStack {
  ingestUrl?: string;
  /** The workers' /healthz + /metrics URLs by function. */
  workerUrls: Record<string, string>;
  inferenceUrl: string;
  emulators: Emulators;
  simulator?: Simulator;
  apiKey: string;
  /** Lines to copy into another shell so every command reaches this stack. */
  exports: string[];
  stop(): Promise<void>;
}

interface Stoppable {
  name: string;
  url?: string;
  stop(): Promise<void>;
}

/**
 * Reads the dev tenant's API key: DEEPQUEUE_DEV_API_KEY, else the key this
 * data folder generated on an earlier run, else a new one (kept in the data
 * folder, mode 600, so restarts keep working curl lines).
 */
function devApiKey(dataDir: string, configured: string | undefined): { key: string; generated: boolean } {
  if (configured) return { key: configured, generated: false };
  const file = join(dataDir, DEV_KEY_FILE);
  if (existsSync(file)) return { key: readFileSync(file, "utf8").trim(), generated: false };
  const key = newApiKey();
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { key, generated: true };
}

/**
 * The whole pipeline on this machine (SPEC §5 `dev`): emulators, the model
 * simulator (unless INFERENCE_URL is set), bootstrap, the `dev` tenant, and
 * every function.
 *
 * @example const stack = await startDev(); … await stack.stop();
 */
export async function startDev(options: DevOptions = {}): Promise<DevStack> {
  const source = options.env ?? process.env;
  const base = loadEnv(baseEnvSchema, source);
  const log = options.logger ?? createLogger({ name: "dev", level: base.LOG_LEVEL });
  const ports = { ...DEV_DEFAULT_PORTS, ...options.ports };
  const dataDir = resolve(base.DEEPQUEUE_DATA_DIR);
  mkdirSync(dataDir, { recursive: true });

  const stopping: Stoppable[] = [];
  const stopAll = async () => {
    for (const part of stopping.reverse()) {
      const started = Date.now();
      await part.stop().catch((error: unknown) => log.warn({ err: error, part: part.name }, "stop failed"));
      log.debug({ part: part.name, ms: Date.now() - started }, "stopped");
    }
  };

  try {
    const emulators = await startEmulators({ sqsPort: ports.sqs, dynamoPort: ports.dynamo, dataDir });
    stopping.push({ name: "emulators", stop: () => emulators.stop() });

    let simulator: Simulator | undefined;
    const externalInference = source.INFERENCE_URL;
    if (!externalInference) {
      simulator = await startSimulator({ port: ports.sim });
      stopping.push({ name: "simulator", stop: () => simulator!.stop() });
    }
    const inferenceUrl = externalInference ?? simulator!.url;

    // Every function started below reads its configuration from the environment, as in a container.
    Object.assign(source, {
      ...emulators.env,
      AWS_ACCESS_KEY_ID: source.AWS_ACCESS_KEY_ID ?? "local",
      AWS_SECRET_ACCESS_KEY: source.AWS_SECRET_ACCESS_KEY ?? "local",
      AWS_REGION: base.AWS_REGION,
      INFERENCE_URL: inferenceUrl,
      DEEPQUEUE_DEV_MODE: "true",
      PORT: String(ports.ingest),
      ...(simulator && !source.DEEPQUEUE_FALLBACK_MODEL
        ? { DEEPQUEUE_FALLBACK_MODEL: DEV_FALLBACK_MODEL }
        : {}),
    });

    const sqs = createSqsClient({ endpoint: emulators.sqsEndpoint, region: base.AWS_REGION });
    const dynamo = createDynamoBaseClient({ endpoint: emulators.dynamoEndpoint, region: base.AWS_REGION });
    const ddb = createDynamoClient({ endpoint: emulators.dynamoEndpoint, region: base.AWS_REGION });
    stopping.push({
      name: "clients",
      stop: async () => {
        sqs.destroy();
        dynamo.destroy();
        ddb.destroy();
      },
    });
    const prefix = base.DEEPQUEUE_PREFIX;
    const report = await bootstrap({ sqs, dynamo, prefix });
    log.debug({ report }, "bootstrapped");

    const tenants = new DynamoTenantStore(ddb, prefix, { secrets: secretBoxFromEnv(base) });
    const { key: apiKey, generated } = devApiKey(dataDir, base.DEEPQUEUE_DEV_API_KEY);
    const dailyRequests = base.DEEPQUEUE_DEV_DAILY_REQUESTS ?? null;
    if (await tenants.get(DEV_TENANT)) {
      await tenants.setApiKey(DEV_TENANT, apiKey);
      await tenants.update(DEV_TENANT, { daily_requests: dailyRequests });
    } else {
      await provisionTenant({ sqs, tenants, prefix }, { tenant: DEV_TENANT, apiKey, dailyRequests });
    }

    let ingestUrl: string | undefined;
    const workerUrls: Record<string, string> = {};
    if (options.functions !== false) {
      const metrics = {
        cache: ports.metrics,
        batcher: ports.metrics && ports.metrics + 1,
        deliver: ports.metrics && ports.metrics + 2,
      };
      for (const part of await startFunctions(source, { ingest: ports.ingest, metrics }, { sqs, ddb }, log)) {
        stopping.push(part);
        if (part.name === "ingest") ingestUrl = part.url;
        else if (part.url) workerUrls[part.name] = part.url;
      }
    }

    const exports = [
      `export AWS_ENDPOINT_URL_SQS=${emulators.sqsEndpoint}`,
      `export AWS_ENDPOINT_URL_DYNAMODB=${emulators.dynamoEndpoint}`,
      ...(prefix !== "deepqueue" ? [`export DEEPQUEUE_PREFIX=${prefix}`] : []),
      `export DEEPQUEUE_API_KEY=${apiKey}`,
    ];
    if (generated) log.debug("generated a dev API key");
    return {
      ...(ingestUrl ? { ingestUrl } : {}),
      workerUrls,
      inferenceUrl,
      emulators,
      ...(simulator ? { simulator } : {}),
      apiKey,
      exports,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * Starts ingest, the three SQS workers and the reconciler loop in this
 * process, each exactly as its container would (`serveFunction`), reading the
 * environment set above. Stopped in reverse: ingest first, so nothing new is
 * accepted while the workers drain.
 */
async function startFunctions(
  source: NodeJS.ProcessEnv,
  ports: { ingest: number; metrics: Record<"cache" | "batcher" | "deliver", number> },
  clients: { sqs: SQSClient; ddb: DynamoDBDocumentClient },
  log: Logger,
): Promise<Stoppable[]> {
  const started: Stoppable[] = [];
  for (const name of ["deliver", "batcher", "cache"] as const) {
    const served = await serveFunction(name, {
      env: source,
      metricsPort: ports.metrics[name],
      host: "127.0.0.1",
      logger: log.child({ function: name }),
    });
    started.push({
      name,
      ...(served.metricsUrl ? { url: served.metricsUrl } : {}),
      stop: () => served.stop(),
    });
  }
  const reconcilerEnv = loadReconcilerEnv(source);
  const reconciler = startReconcilerLoop(
    createReconcilerDeps(reconcilerEnv, { ...clients, logger: log.child({ function: "reconciler" }) }),
    { intervalMs: reconcilerEnv.DEEPQUEUE_RECONCILE_INTERVAL_SECONDS * 1000 },
  );
  started.push({ name: "reconciler", stop: () => reconciler.stop() });
  const ingest = await serveFunction("ingest", {
    env: source,
    port: ports.ingest,
    // Ingest's own metrics port (off its public port); every function shares this process's registry,
    // so the workers' /metrics URLs in the banner show ingest's series too.
    metricsPort: 0,
    host: "127.0.0.1",
    logger: log.child({ function: "ingest" }),
  });
  started.push({ name: "ingest", ...(ingest.url ? { url: ingest.url } : {}), stop: () => ingest.stop() });
  return started;
}

/** The banner `deepqueue dev` prints: URLs, the copy-paste lines and a ready curl. */
export function devBanner(stack: DevStack): string {
  const ingest = stack.ingestUrl ?? "(ingest not running)";
  const lines = [
    "deepqueue dev is up",
    "",
    `  ingest      ${ingest}`,
    `  SQS         ${stack.emulators.sqsEndpoint}`,
    `  DynamoDB    ${stack.emulators.dynamoEndpoint}`,
    `  model       ${stack.inferenceUrl}${stack.simulator ? " (simulator)" : ""}`,
    ...Object.entries(stack.workerUrls).map(([name, url]) => `  ${name.padEnd(11)} ${url}/metrics`),
    `  tenant      ${DEV_TENANT}`,
    "",
    "Point other shells at this stack:",
    ...stack.exports.map((line) => `  ${line}`),
    "",
    "Submit a request:",
    `  curl -s ${ingest}/v1/requests -H "Authorization: Bearer ${stack.apiKey}" -H "Content-Type: application/json" -d '{"prompt":"Hello, DeepSeek","temperature":0}'`,
    "",
    "Read results:   npx deepqueue results --follow",
    "Stop:           Ctrl-C",
  ];
  return lines.join("\n");
}
