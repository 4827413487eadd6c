import { GetQueueUrlCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { type IngestDepsOverrides, ingestDepsFromEnv } from "../../functions/ingest/deps.ts";
import { createIngestHandler } from "../../functions/ingest/handler.ts";
import type { IngestOptions } from "../../functions/ingest/ingest.ts";
import { type HttpServerHandle, serveHttp } from "../../functions/runtime/http.ts";
import { checkCallbackUrl, type Lookup } from "../../functions/shared/callback-url.ts";
import { createLogger } from "../../functions/shared/logger.ts";
import { queueName, tableName } from "../../functions/shared/names.ts";
import { provisionTenant } from "../../functions/shared/provision.ts";
import { DynamoTenantStore } from "../../functions/shared/stores/tenants.ts";
import type { TestStack } from "./emulators.ts";

/** DNS for tests: no network, a public and a private name. */
export const fakeLookup: Lookup = async (hostname) => {
  if (hostname === "hooks.example.com") return [{ address: "93.184.216.34", family: 4 }];
  if (hostname === "internal.example.com") return [{ address: "10.1.2.3", family: 4 }];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
};

export interface IngestServer extends HttpServerHandle {
  deps: IngestOptions;
  logs: Array<Record<string, unknown>>;
}

/** A real ingest server (serveHttp + handler) on a free loopback port against the test stack. */
export async function startIngestServer(
  stack: TestStack,
  env: Record<string, string> = {},
  overrides: IngestDepsOverrides = {},
): Promise<IngestServer> {
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger(
    { name: "ingest", level: "debug" },
    { write: (line: string) => void logs.push(JSON.parse(line)) },
  );
  const deps = ingestDepsFromEnv(
    { ...stack.env, LOG_LEVEL: "info", ...env },
    {
      logger,
      checkCallback: (url, options) => checkCallbackUrl(url, { ...options, lookup: fakeLookup }),
      ...overrides,
    },
  );
  const publicMetrics = env.DEEPQUEUE_INGEST_PUBLIC_METRICS === "true";
  const handler = createIngestHandler(deps, { publicMetrics });
  const server = await serveHttp(handler, {
    preflight: handler.preflight,
    port: 0,
    host: "127.0.0.1",
    drainMs: 1000,
  });
  return { ...server, deps, logs };
}

export async function makeTenant(
  stack: TestStack,
  tenant: string,
  options: { dailyRequests?: number | null; dailyTokens?: number | null } = {},
) {
  const tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  return provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant, ...options });
}

export function post(
  url: string,
  key: string | undefined,
  body: unknown,
  headers: Record<string, string> = {},
) {
  return fetch(`${url}/v1/requests`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

export async function queueUrl(
  sqs: SQSClient,
  prefix: string,
  queue: "requests" | "inference" = "requests",
): Promise<string> {
  const out = await sqs.send(new GetQueueUrlCommand({ QueueName: queueName(prefix, queue) }));
  return out.QueueUrl!;
}

/**
 * Every message body ingest has sent and nobody received yet: on the requests queue (cacheable
 * requests, conversation turns) and the inference queue (the rest), each tagged with its queue in
 * `_queue`. Received and left to reappear later.
 */
export async function drainRequestsQueue(stack: TestStack): Promise<Array<Record<string, unknown>>> {
  return [...(await drainQueue(stack, "requests")), ...(await drainQueue(stack, "inference"))];
}

async function drainQueue(
  stack: TestStack,
  queue: "requests" | "inference",
): Promise<Array<Record<string, unknown>>> {
  const url = await queueUrl(stack.sqs, stack.prefix, queue);
  const bodies: Array<Record<string, unknown>> = [];
  for (;;) {
    const out = await stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: 300,
      }),
    );
    if (!out.Messages?.length) return bodies;
    for (const m of out.Messages) bodies.push({ ...JSON.parse(m.Body ?? "{}"), _queue: queue });
  }
}

/** Request records of one tenant, straight from the table. */
export async function recordsOf(stack: TestStack, tenant: string): Promise<Array<Record<string, unknown>>> {
  const out = await stack.ddb.send(new ScanCommand({ TableName: tableName(stack.prefix, "requests") }));
  return (out.Items ?? []).filter((item) => item.tenant === tenant);
}

/** The fields tests read from a response body. */
export interface JsonBody {
  id: string;
  status: string;
  status_url: string;
  error: { code: string; message: string };
  [field: string]: unknown;
}

export async function json(res: Response): Promise<JsonBody> {
  return (await res.json()) as JsonBody;
}
