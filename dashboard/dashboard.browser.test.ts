import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSqsClient } from "../functions/shared/clients.ts";
import { createLogger } from "../functions/shared/logger.ts";
import { type DevStack, startDev } from "../local/dev.ts";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./chromium.ts";
import { metricsUrlOf } from "./config.ts";
import { type Dashboard, startDashboard } from "./server.ts";

/**
 * The dashboard in a real browser: Debian's Chromium (`.ci/run` installs it)
 * driven by playwright-core, against the whole `dev` pipeline on free ports.
 * DEEPQUEUE_CHROMIUM overrides the browser's path.
 */
const CHROMIUM = CHROMIUM_PATH;

describe("the dashboard in Chromium, against the dev pipeline", () => {
  let stack: DevStack;
  let dashboard: Dashboard;
  let context: BrowserContext;
  let page: Page;
  let sqs: SQSClient;
  let profile: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `no Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does), or set DEEPQUEUE_CHROMIUM`,
      );
    }
    stack = await startDev({
      env: { DEEPQUEUE_DATA_DIR: mkdtempSync(join(tmpdir(), "dq-dash-")), LOG_LEVEL: "silent" },
      ports: { ingest: 0, sqs: 0, dynamo: 0, sim: 0, metrics: 0 },
    });
    dashboard = await startDashboard({
      endpoints: { sqs: stack.emulators.sqsEndpoint, dynamodb: stack.emulators.dynamoEndpoint },
      devMode: true,
      port: 0,
      pollMs: 500,
      modelMetricsUrls: [metricsUrlOf(stack.inferenceUrl)],
      logger: createLogger({ level: "silent" }),
    });
    sqs = createSqsClient({ endpoint: stack.emulators.sqsEndpoint });
    profile = mkdtempSync(join(tmpdir(), "dq-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1440, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(error.message));
  });

  afterAll(async () => {
    await context?.close();
    await dashboard?.stop();
    sqs?.destroy();
    await stack?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function submit(prompt: string): Promise<string> {
    const res = await fetch(`${stack.ingestUrl}/v1/requests`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt, temperature: 0, max_tokens: 32 }),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  }

  it("loads without console errors and shows a request submitted a moment ago, live", async () => {
    await page.goto(dashboard.url);
    await expect.poll(() => page.locator("#live-state").textContent(), { timeout: 10_000 }).toBe("live");
    await expect.poll(() => page.locator("#queues tbody tr").count()).toBeGreaterThanOrEqual(6);

    // Submitted after the page loaded: it must arrive over the live stream, without a reload.
    const id = await submit("What does a dead-letter queue hold?");
    const link = page.locator(`#requests a[href="/requests/${id}"]`);
    await link.waitFor({ state: "visible", timeout: 10_000 });
    await expect
      .poll(() => page.locator(`#requests tr:has(a[href="/requests/${id}"]) .badge`).textContent(), {
        timeout: 20_000,
      })
      .toBe("completed");
    await expect.poll(() => page.locator("#models .badge").first().textContent()).toBe("up");
    expect(consoleErrors).toEqual([]);
  });

  it("is usable by keyboard: focus survives live updates, and the filters work", async () => {
    await page.goto(dashboard.url);
    await expect.poll(() => page.locator("#live-state").textContent(), { timeout: 10_000 }).toBe("live");
    const status = page.locator('#requests select[name="status"]');
    await status.focus();
    await status.selectOption("completed");
    // The requests panel is re-rendered every poll ("3 s ago" changes); wait for a few swaps.
    const before = await page.locator("#requests time").first().textContent();
    await expect
      .poll(() => page.locator("#requests time").first().textContent(), { timeout: 10_000 })
      .not.toBe(before);
    expect(await page.locator(":focus").getAttribute("name")).toBe("status");
    expect(await status.inputValue()).toBe("completed");
    await page.keyboard.press("Tab"); // to Apply
    await page.keyboard.press("Enter");
    await page.waitForURL(/status=completed/);
    const badges = await page.locator("#requests tbody .badge").allTextContents();
    expect(badges.length).toBeGreaterThan(0);
    expect(new Set(badges)).toEqual(new Set(["completed"]));
    expect(consoleErrors).toEqual([]);
  });

  it("opens a request's detail: timeline, trace id, result", async () => {
    const id = await submit("Name one message queue.");
    await page.goto(dashboard.url);
    const link = page.locator(`#requests a[href="/requests/${id}"]`);
    await link.waitFor({ state: "visible", timeout: 10_000 });
    // By keyboard: focus the link and press Enter.
    await link.focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(`**/requests/${id}`);
    await expect
      .poll(() => page.locator("#detail .timeline").textContent(), { timeout: 20_000 })
      .toContain("answered by the model");
    const facts = await page.locator("#detail dl.facts").textContent();
    expect(facts).toMatch(/trace id\s*[0-9a-f]{32}/);
    expect(await page.locator("#detail .timeline li").first().textContent()).toContain("accepted");
    expect((await page.locator("#detail pre").nth(1).textContent())?.length).toBeGreaterThan(0);
    expect(consoleErrors).toEqual([]);
  });

  it("shows a dead letter with its secrets masked and redrives it back after confirmation", async () => {
    const dlqUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: "deepqueue-results-dev-dlq" })))
      .QueueUrl!;
    const sourceUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: "deepqueue-results-dev" })))
      .QueueUrl!;
    // Empty the result queue of the earlier tests' events, so what arrives next is the redriven one.
    for (;;) {
      const out = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: sourceUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 600 }),
      );
      if (!out.Messages?.length) break;
    }
    const leaked = "dq_thisIsNotARealKeyButLooksLikeOne_123456";
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: dlqUrl,
        MessageBody: JSON.stringify({
          type: "deepqueue.request.completed",
          note: `key ${leaked}`,
          api_key: leaked,
        }),
      }),
    );

    await page.goto(`${dashboard.url}/#dead-letters`);
    const button = page.locator('#dead-letters [data-redrive="deepqueue-results-dev-dlq"]');
    // Tenants' result queues are read every 10 s (DASHBOARD_DEFAULTS.tenantPollSeconds).
    await button.waitFor({ state: "visible", timeout: 30_000 });
    await expect.poll(() => page.locator("#dead-letters details").count(), { timeout: 30_000 }).toBe(1);
    await page.locator("#dead-letters details summary").first().click();
    const shown = await page.locator("#dead-letters pre").first().textContent();
    expect(shown).toContain("deepqueue.request.completed");
    expect(shown).toContain("••••••");
    expect(await page.content()).not.toContain(leaked);
    expect(await page.content()).not.toContain(stack.apiKey);

    await button.click();
    const dialog = page.locator("#redrive-dialog");
    await dialog.waitFor({ state: "visible" });
    expect(await dialog.textContent()).toContain("Move 1 message(s) from deepqueue-results-dev-dlq");
    const posted = page.waitForResponse(
      (r) => r.url().endsWith("/redrive") && r.request().method() === "POST",
    );
    await dialog.getByRole("button", { name: "Redrive" }).click();
    expect((await posted).status()).toBe(303);
    await expect
      .poll(() => page.locator("#dead-letters .job").textContent(), { timeout: 20_000 })
      .toContain("Moved 1 message(s) from deepqueue-results-dev-dlq back to deepqueue-results-dev");

    const back = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: sourceUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 }),
    );
    expect(back.Messages?.map((m) => JSON.parse(m.Body!).api_key)).toEqual([leaked]);
    expect(consoleErrors).toEqual([]);
  });
});
