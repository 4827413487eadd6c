/**
 * Makes docs/dashboard.png and docs/dashboard-request.png: the whole dev
 * pipeline on free ports, three tenants, a few requests (some answered from
 * the cache), a dead letter, then Chromium's picture of the page.
 *
 *   npx tsx dashboard/screenshot.ts docs/dashboard.png
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GetQueueUrlCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { chromium } from "playwright-core";
import { createDynamoClient, createSqsClient } from "../functions/shared/clients.ts";
import { createLogger } from "../functions/shared/logger.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { startDev } from "../local/dev.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./chromium.ts";
import { metricsUrlOf } from "./config.ts";
import { startDashboard } from "./server.ts";

const env: Record<string, string> = {
  DEEPQUEUE_DATA_DIR: mkdtempSync(join(tmpdir(), "dq-shot-")),
  LOG_LEVEL: "silent",
};
const stack = await startDev({ env, ports: { ingest: 0, sqs: 0, dynamo: 0, sim: 0, metrics: 0 } });
const sqs = createSqsClient({ endpoint: stack.emulators.sqsEndpoint });
const ddb = createDynamoClient({ endpoint: stack.emulators.dynamoEndpoint });
const tenants = new DynamoTenantStore(ddb, "deepqueue");
const acme = await provisionTenant(
  { sqs, tenants, prefix: "deepqueue" },
  { tenant: "acme", dailyRequests: 500, dailyTokens: 200000 },
);
const globex = await provisionTenant(
  { sqs, tenants, prefix: "deepqueue" },
  { tenant: "globex", dailyRequests: 40 },
);
const dash = await startDashboard({
  endpoints: { sqs: stack.emulators.sqsEndpoint, dynamodb: stack.emulators.dynamoEndpoint },
  devMode: true,
  port: 0,
  pollMs: 1000,
  modelMetricsUrls: [metricsUrlOf(stack.inferenceUrl)],
  logger: createLogger({ level: "silent" }),
});
const submit = (key: string, body: object) =>
  fetch(`${stack.ingestUrl}/v1/requests`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const prompts = [
  "Summarize the SQS visibility timeout in one sentence.",
  "What is KEDA?",
  "Name three message queues.",
  "Explain idempotency keys.",
  "What is a dead-letter queue?",
  "Translate 'queue' to French.",
];
for (let round = 0; round < 3; round++) {
  for (const [i, p] of prompts.entries()) {
    const key = i % 3 === 0 ? stack.apiKey : i % 3 === 1 ? acme.api_key : globex.api_key;
    await submit(key, { prompt: p, temperature: 0, max_tokens: round === 0 ? 48 : 64 });
    await sleep(250);
  }
}
const dlq = (await sqs.send(new GetQueueUrlCommand({ QueueName: "deepqueue-delivery-dlq" }))).QueueUrl!;
await sqs.send(
  new SendMessageCommand({
    QueueUrl: dlq,
    MessageBody: JSON.stringify({
      specversion: "1.0",
      type: "deepqueue.delivery.requested",
      source: "deepqueue/batcher",
      id: "evt_01a2",
      dqfailure: "exhausted: 8 attempts failed; last: HTTP 503",
      data: {
        tenant: "acme",
        callback_url: "https://hooks.acme.example/deepqueue",
        event: { subject: "req_01a2…" },
      },
    }),
  }),
);
for (let i = 0; i < 4; i++) {
  await submit(acme.api_key, {
    prompt: `Write a haiku about queue number ${i}.`,
    temperature: 0.7,
    max_tokens: 400,
  });
}
await sleep(1500);
const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "dq-chr-")), {
  executablePath: CHROMIUM_PATH,
  headless: true,
  args: CHROMIUM_ARGS,
  viewport: { width: 1440, height: 1000 },
  deviceScaleFactor: 1,
  colorScheme: "light",
});
const page = ctx.pages()[0] ?? (await ctx.newPage());
await page.goto(dash.url);
await page.waitForTimeout(2500);
await page.locator("#dead-letters details summary").first().click();
await page.waitForTimeout(300);
await page.screenshot({ path: process.argv[2] ?? "docs/dashboard.png", fullPage: true });
const reqId = await page.locator("#requests tbody a").nth(5).getAttribute("href");
await page.goto(dash.url + reqId);
await page.waitForTimeout(1500);
await page.screenshot({
  path: (process.argv[2] ?? "docs/dashboard.png").replace(".png", "-request.png"),
  fullPage: true,
});
await ctx.close();
await dash.stop();
sqs.destroy();
ddb.destroy();
await stack.stop();
