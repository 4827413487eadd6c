import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { DEV_CHILD_VARIABLE } from "../cli/ready.ts";
import { loadReconcilerEnv } from "../functions/reconciler/config.ts";
import { reconcilerDepsFromEnv } from "../functions/reconciler/deps.ts";
import { startReconcilerLoop } from "../functions/reconciler/reconciler.ts";
import { bootstrap } from "../functions/shared/bootstrap.ts";
import { createDynamoBaseClient, createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { type BaseEnv, baseEnvSchema, loadEnv } from "../functions/shared/env.ts";
import { newApiKey } from "../functions/shared/ids.ts";
import { createLogger, type Logger } from "../functions/shared/logger.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { createS3Client } from "../functions/shared/s3-client.ts";
import { secretBoxFromEnv } from "../functions/shared/secret-box.ts";
import { DynamoTenantStore, type Tenant } from "../functions/shared/stores/tenants.ts";
import { type ChildCommand, startChild } from "./children.ts";
import { DEV_PORTS, type Emulators } from "./emulators.ts";
import { DevStackError } from "./errors.ts";
import { PRETTY_LOGS_VARIABLE } from "./pretty-log.ts";

/** `deepqueue dev`'s ports. */
export const DEV_DEFAULT_PORTS = {
  ingest: 8080,
  sqs: DEV_PORTS.sqs,
  dynamo: DEV_PORTS.dynamo,
  sim: 8000,
  /** The functions' /healthz + /metrics: cache on this port, batcher +1, deliver +2, ingest +3, batches +4; 0 = free ports. */
  metrics: 9091,
} as const;
export const DEV_TENANT = "dev";
/** The simulator's small model, used as the fallback (degradation level 2) when none is configured. */
const DEV_FALLBACK_MODEL = "deepseek-chat-small";
const DEV_KEY_FILE = "dev-api-key";
/** The dev tenant's webhook secret, beside its API key (examples/webhook-receiver.ts reads it). */
export const DEV_WEBHOOK_SECRET_FILE = "dev-webhook-secret";

export interface DevOptions {
  /** Ports; 0 picks free ones (tests). Defaults are DEV_DEFAULT_PORTS. */
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
  /** The simulator, when dev started it (INFERENCE_URL unset). */
  simulator?: { url: string };
  apiKey: string;
  /** The dev tenant's current webhook secret (`whsec_…`): callbacks are signed with it. */
  webhookSecret: string;
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
 * Writes the dev tenant's current webhook secret into the data folder (mode
 * 600), beside its API key, so a local receiver can verify callbacks without
 * rotating the secret. The tenant table stays the truth: after a
 * `keys rotate-secret --tenant dev`, the next start writes the new secret.
 */
function devWebhookSecret(dataDir: string, tenant: Pick<Tenant, "webhook_secrets">): string {
  const secret = tenant.webhook_secrets[0]?.secret;
  if (!secret) throw new DevStackError(`the ${DEV_TENANT} tenant has no webhook secret`);
  const file = join(dataDir, DEV_WEBHOOK_SECRET_FILE);
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return secret;
}

/**
 * What dev started, in the order it stops them: ingest and the workers together (nothing new is
 * accepted while the workers release what they hold), then the clients, then the simulator and
 * the emulators.
 */
class StopStages {
  readonly #stages: [Stoppable[], Stoppable[], Stoppable[]] = [[], [], []];
  constructor(private readonly log: Logger) {}

  /** Stage 0: emulators and simulator (stopped last); 1: clients; 2: the functions (first). */
  add(stage: 0 | 1 | 2, part: Stoppable): void {
    this.#stages[stage].push(part);
  }

  async stopAll(): Promise<void> {
    for (const stage of [...this.#stages].reverse()) {
      await Promise.all(
        stage.map(async (part) => {
          const started = Date.now();
          await part
            .stop()
            .catch((error: unknown) => this.log.warn({ err: error, part: part.name }, "stop failed"));
          this.log.debug({ part: part.name, ms: Date.now() - started }, "stopped");
        }),
      );
    }
  }
}

/**
 * The whole pipeline on this machine (`dev`, docs/api.md#cli): emulators, the model
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
  const stages = new StopStages(log);
  const childEnv = () => devChildEnv(source, dataDir, options.env !== undefined);
  try {
    const { emulators, simulator } = await startBackends(ports, childEnv, stages, source.INFERENCE_URL);
    const inferenceUrl = source.INFERENCE_URL ?? simulator!.urls.url!;
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
    const clients = devClients(emulators, base.AWS_REGION, stages);
    const prefix = base.DEEPQUEUE_PREFIX;
    log.debug({ report: await bootstrap({ ...clients, prefix }) }, "bootstrapped");
    const tenant = await provisionDevTenant(clients, base, dataDir);
    if (tenant.generated) log.debug("generated a dev API key");
    const functions =
      options.functions === false
        ? { workerUrls: {} }
        : await startDevFunctions(childEnv(), ports, clients, log, stages);
    return {
      ...functions,
      inferenceUrl,
      emulators,
      ...(simulator ? { simulator: { url: inferenceUrl } } : {}),
      apiKey: tenant.apiKey,
      webhookSecret: tenant.webhookSecret,
      exports: [
        `export AWS_ENDPOINT_URL_SQS=${emulators.sqsEndpoint}`,
        `export AWS_ENDPOINT_URL_S3=${emulators.sqsEndpoint}`,
        `export AWS_ENDPOINT_URL_DYNAMODB=${emulators.dynamoEndpoint}`,
        ...(prefix !== "deepqueue" ? [`export DEEPQUEUE_PREFIX=${prefix}`] : []),
        `export DEEPQUEUE_API_KEY=${tenant.apiKey}`,
        `export DEEPQUEUE_WEBHOOK_SECRET=${tenant.webhookSecret}`,
      ],
      stop: () => stages.stopAll(),
    };
  } catch (error) {
    await stages.stopAll();
    throw error;
  }
}

/**
 * What every child reads: this environment (the functions' configuration, as in a container),
 * and, when the caller passed its own, the basics of this process's.
 */
function devChildEnv(source: NodeJS.ProcessEnv, dataDir: string, ownEnv: boolean): NodeJS.ProcessEnv {
  return {
    ...(ownEnv ? pickBasics(process.env) : {}),
    ...source,
    DEEPQUEUE_DATA_DIR: dataDir,
    [DEV_CHILD_VARIABLE]: "1",
    // The children write to this terminal too: one coloured line per entry, like dev's own.
    ...(process.stdout.isTTY && !ownEnv ? { [PRETTY_LOGS_VARIABLE]: "1" } : {}),
  };
}

/** The emulators and (unless the model is external) the simulator, started together; each is stopped last. */
async function startBackends(
  ports: Record<keyof typeof DEV_DEFAULT_PORTS, number>,
  childEnv: () => NodeJS.ProcessEnv,
  stages: StopStages,
  externalInference: string | undefined,
): Promise<{ emulators: Emulators; simulator: ChildCommand | undefined }> {
  const tracked = (name: string, args: string[]) =>
    startChild({ name, args, env: childEnv() }).then((started) => {
      stages.add(0, started);
      return started;
    });
  const [sqsEmulator, dynamoEmulator, simulator] = await settledOrThrow([
    tracked("sqs", ["emulators", "--only", "sqs", "--sqs-port", String(ports.sqs)]),
    tracked("dynamodb", ["emulators", "--only", "dynamodb", "--dynamodb-port", String(ports.dynamo)]),
    externalInference
      ? Promise.resolve(undefined)
      : tracked("simulator", ["sim", "--port", String(ports.sim)]),
  ] as const);
  const emulators: Emulators = {
    sqsEndpoint: sqsEmulator.urls.sqsEndpoint!,
    dynamoEndpoint: dynamoEmulator.urls.dynamoEndpoint!,
    env: {
      AWS_ENDPOINT_URL_SQS: sqsEmulator.urls.sqsEndpoint!,
      // fauxqs serves S3 (the files bucket) on the SQS port.
      AWS_ENDPOINT_URL_S3: sqsEmulator.urls.sqsEndpoint!,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEmulator.urls.dynamoEndpoint!,
    },
    stop: async () => {
      await Promise.all([sqsEmulator.stop(), dynamoEmulator.stop()]);
    },
  };
  return { emulators, simulator };
}

/** dev's own AWS clients, on the emulators; destroyed after the functions stop. */
function devClients(emulators: Emulators, region: string, stages: StopStages) {
  const sqs = createSqsClient({ endpoint: emulators.sqsEndpoint, region });
  const dynamo = createDynamoBaseClient({ endpoint: emulators.dynamoEndpoint, region });
  const ddb = createDynamoClient({ endpoint: emulators.dynamoEndpoint, region });
  const s3 = createS3Client({ endpoint: emulators.sqsEndpoint, region });
  stages.add(1, {
    name: "clients",
    stop: async () => {
      sqs.destroy();
      dynamo.destroy();
      ddb.destroy();
      s3.destroy();
    },
  });
  return { sqs, dynamo, ddb, s3 };
}

/** The `dev` tenant, created or brought up to date, with its key and webhook secret in the data folder. */
async function provisionDevTenant(
  clients: { sqs: SQSClient; ddb: DynamoDBDocumentClient },
  base: BaseEnv,
  dataDir: string,
): Promise<{ apiKey: string; generated: boolean; webhookSecret: string }> {
  const prefix = base.DEEPQUEUE_PREFIX;
  const tenants = new DynamoTenantStore(clients.ddb, prefix, { secrets: secretBoxFromEnv(base) });
  const { key: apiKey, generated } = devApiKey(dataDir, base.DEEPQUEUE_DEV_API_KEY);
  const dailyRequests = base.DEEPQUEUE_DEV_DAILY_REQUESTS ?? null;
  if (await tenants.get(DEV_TENANT)) {
    await tenants.setApiKey(DEV_TENANT, apiKey);
    await tenants.update(DEV_TENANT, { daily_requests: dailyRequests });
  } else {
    await provisionTenant(
      { sqs: clients.sqs, tenants, prefix },
      { tenant: DEV_TENANT, apiKey, dailyRequests },
    );
  }
  const webhookSecret = devWebhookSecret(dataDir, (await tenants.get(DEV_TENANT))!);
  return { apiKey, generated, webhookSecret };
}

/** Ingest, the workers and the reconciler; the URLs dev prints. */
async function startDevFunctions(
  env: NodeJS.ProcessEnv,
  ports: Record<keyof typeof DEV_DEFAULT_PORTS, number>,
  clients: { sqs: SQSClient; ddb: DynamoDBDocumentClient },
  log: Logger,
  stages: StopStages,
): Promise<{ ingestUrl?: string; workerUrls: Record<string, string> }> {
  const metrics = {
    cache: ports.metrics,
    batcher: ports.metrics && ports.metrics + 1,
    deliver: ports.metrics && ports.metrics + 2,
    // Ingest's /metrics is off its public port (it names tenants): on its own metrics port.
    ingest: ports.metrics && ports.metrics + 3,
    batches: ports.metrics && ports.metrics + 4,
  };
  const started = await startFunctions(env, { ingest: ports.ingest, metrics }, clients, log, (part) =>
    stages.add(2, part),
  );
  let ingestUrl: string | undefined;
  const workerUrls: Record<string, string> = {};
  for (const part of started) {
    if (part.name === "ingest") ingestUrl = part.url;
    else if (part.url) workerUrls[part.name] = part.url;
  }
  return { ...(ingestUrl ? { ingestUrl } : {}), workerUrls };
}

/** Like Promise.all, but waits for every promise to settle before throwing the first failure. */
async function settledOrThrow<T extends readonly unknown[]>(
  promises: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>;
  };
}

/** The variables a child needs from this process when the caller gave dev an environment of its own. */
function pickBasics(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const keep = ["PATH", "HOME", "TMPDIR", "TERM", "LANG", "NODE_OPTIONS", "NO_COLOR", "FORCE_COLOR"];
  return Object.fromEntries(keep.filter((k) => env[k] !== undefined).map((k) => [k, env[k]]));
}

/**
 * Starts ingest and the three SQS workers, each as its own `deepqueue serve`
 * process exactly as its container runs it (in parallel: each loads its own
 * modules), and the reconciler loop in this process (one query every few
 * seconds).
 */
async function startFunctions(
  env: NodeJS.ProcessEnv,
  ports: { ingest: number; metrics: Record<"cache" | "batcher" | "deliver" | "ingest" | "batches", number> },
  clients: { sqs: SQSClient; ddb: DynamoDBDocumentClient },
  log: Logger,
  onStarted: (part: Stoppable) => void,
): Promise<Stoppable[]> {
  const reconcilerEnv = loadReconcilerEnv(env);
  const reconciler = startReconcilerLoop(
    reconcilerDepsFromEnv(env, { ...clients, logger: log.child({ function: "reconciler" }) }),
    { intervalMs: reconcilerEnv.DEEPQUEUE_RECONCILE_INTERVAL_SECONDS * 1000 },
  );
  const started: Stoppable[] = [{ name: "reconciler", stop: () => reconciler.stop() }];
  onStarted(started[0]!);
  const serve = async (name: "ingest" | "cache" | "batcher" | "deliver" | "batches") => {
    const args =
      name === "ingest"
        ? [
            "serve",
            "ingest",
            "--port",
            String(ports.ingest),
            "--metrics-port",
            String(ports.metrics.ingest),
            "--host",
            "127.0.0.1",
          ]
        : ["serve", name, "--metrics-port", String(ports.metrics[name]), "--host", "127.0.0.1"];
    const child = await startChild({ name, args, env });
    const part: Stoppable = {
      name,
      ...(child.urls.url || child.urls.metricsUrl ? { url: child.urls.url ?? child.urls.metricsUrl } : {}),
      stop: () => child.stop(),
    };
    onStarted(part);
    started.push(part);
  };
  await settledOrThrow((["deliver", "batcher", "cache", "batches", "ingest"] as const).map(serve));
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
    "Callbacks:      npx tsx examples/webhook-receiver.ts   (verifies with the dev webhook secret)",
    "Stop:           Ctrl-C",
  ];
  return lines.join("\n");
}
