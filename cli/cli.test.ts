import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetQueueUrlCommand } from "@aws-sdk/client-sqs";
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoTenantStore, hashApiKey } from "../functions/shared/stores/tenants.ts";
import { runCli } from "../test/helpers/cli.ts";
import { startTestStack, type TestStack } from "../test/helpers/emulators.ts";
import { buildProgram } from "./index.ts";

describe("deepqueue CLI against the emulators", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ bootstrap: false });
  });
  afterAll(() => stack.stop());

  it("bootstrap creates everything, and the second run is a no-op", async () => {
    const first = await runCli(["bootstrap"], stack.env);
    expect(first.stdout).toContain(`queue ${stack.prefix}-requests (+ -dlq): created`);
    expect(first.stdout).toContain("TTL API not supported by this endpoint");
    const second = await runCli(["bootstrap", "--json"], stack.env);
    const report = JSON.parse(second.stdout);
    expect(report.queues.every((q: { created: boolean }) => !q.created)).toBe(true);
    expect(report.tables.every((t: { created: boolean }) => !t.created)).toBe(true);
  });

  it("keys create --json prints a key that authenticates, a secret and the result queue", async () => {
    const { stdout } = await runCli(
      ["keys", "create", "--tenant", "acme", "--daily-requests", "50", "--daily-tokens", "9000", "--json"],
      stack.env,
    );
    const made = JSON.parse(stdout);
    expect(Object.keys(made).sort()).toEqual(
      ["api_key", "daily_requests", "daily_tokens", "result_queue_url", "tenant", "webhook_secret"].sort(),
    );
    expect(made).toMatchObject({ tenant: "acme", daily_requests: 50, daily_tokens: 9000 });
    const tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
    expect((await tenants.findByKeyHash(hashApiKey(made.api_key)))?.tenant).toBe("acme");
    const queue = await stack.sqs.send(new GetQueueUrlCommand({ QueueName: `${stack.prefix}-results-acme` }));
    expect(made.result_queue_url).toBe(queue.QueueUrl);
  });

  it("keys list never shows keys; revoke and rotate-secret work", async () => {
    const list = JSON.parse((await runCli(["keys", "list", "--json"], stack.env)).stdout);
    expect(list.find((t: { tenant: string }) => t.tenant === "acme")).toMatchObject({
      status: "active",
      webhook_secrets: 1,
    });
    expect(JSON.stringify(list)).not.toMatch(/dq_[A-Za-z0-9_-]{20}/);

    const rotated = JSON.parse(
      (await runCli(["keys", "rotate-secret", "--tenant", "acme", "--json"], stack.env)).stdout,
    );
    expect(rotated.webhook_secret).toMatch(/^whsec_/);
    const afterRotate = JSON.parse((await runCli(["keys", "list", "--json"], stack.env)).stdout);
    expect(afterRotate.find((t: { tenant: string }) => t.tenant === "acme").webhook_secrets).toBe(2);

    await runCli(["keys", "revoke", "--tenant", "acme"], stack.env);
    const revoked = JSON.parse((await runCli(["keys", "list", "--json"], stack.env)).stdout);
    expect(revoked.find((t: { tenant: string }) => t.tenant === "acme").status).toBe("revoked");
  });

  it("keys update changes quotas and switches, refusing unknown values", async () => {
    await runCli(["keys", "create", "--tenant", "upd"], stack.env);
    const updated = JSON.parse(
      (
        await runCli(
          [
            "keys",
            "update",
            "--tenant",
            "upd",
            "--daily-requests",
            "unlimited",
            "--require-signatures",
            "on",
            "--require-jwt-and-key",
            "on",
            "--degradation",
            "cache,static",
            "--json",
          ],
          stack.env,
        )
      ).stdout,
    );
    expect(updated).toMatchObject({
      daily_requests: null,
      require_signatures: true,
      require_jwt_and_api_key: true,
      degradation: { cache: true, fallback: false, static: true },
    });
    const stored = await new DynamoTenantStore(stack.ddb, stack.prefix).get("upd");
    expect(stored).toMatchObject({
      daily_requests: null,
      require_signatures: true,
      require_jwt_and_api_key: true,
    });
    await expect(
      runCli(["keys", "update", "--tenant", "upd", "--degradation", "gpu"], stack.env),
    ).rejects.toThrow(/unknown level gpu/);
    await expect(
      runCli(["keys", "update", "--tenant", "nobody", "--cache-opt-in", "on"], stack.env),
    ).rejects.toThrow(/does not exist/);
  });

  it("keys seal-secrets encrypts plain-text webhook secrets; without a key it refuses", async () => {
    const { stdout } = await runCli(["keys", "create", "--tenant", "sealme", "--json"], stack.env);
    const made = JSON.parse(stdout) as { webhook_secret: string };
    const raw = async () =>
      JSON.stringify((await stack.ddb.send(new ScanCommand({ TableName: `${stack.prefix}-tenants` }))).Items);
    expect(await raw()).toContain(made.webhook_secret);
    await expect(runCli(["keys", "seal-secrets"], stack.env)).rejects.toThrow(/DEEPQUEUE_SECRETS_KEY/);
    const env = { ...stack.env, DEEPQUEUE_SECRETS_KEY: randomBytes(32).toString("base64") };
    expect((await runCli(["keys", "seal-secrets"], env)).stdout).toMatch(
      /sealed the webhook secrets of [1-9]/,
    );
    expect(await raw()).not.toContain(made.webhook_secret);
    expect((await runCli(["keys", "seal-secrets"], env)).stdout).toContain("of 0 tenant(s)");
  });

  it("refuses a bad tenant name and a bad quota, naming them", async () => {
    await expect(runCli(["keys", "create", "--tenant", "Not_Valid"], stack.env)).rejects.toThrow(
      /tenant name/,
    );
    await expect(
      runCli(["keys", "create", "--tenant", "ok", "--daily-requests", "0"], stack.env),
    ).rejects.toThrow(/--daily-requests/);
  });

  it("fails at start with the variable's name when configuration is bad", async () => {
    await expect(runCli(["keys", "list"], { ...stack.env, DEEPQUEUE_PREFIX: "UPPER" })).rejects.toThrow(
      /DEEPQUEUE_PREFIX/,
    );
  });
});

describe("deepqueue --help", () => {
  it("lists every documented command, each with its own help", async () => {
    const program = await buildProgram();
    const names = program.commands.map((c) => c.name());
    for (const name of [
      "dev",
      "serve",
      "emulators",
      "sim",
      "bootstrap",
      "keys",
      "submit",
      "results",
      "redrive",
      "dashboard",
      "synth",
      "bench",
    ]) {
      expect(names).toContain(name);
      expect(program.commands.find((c) => c.name() === name)?.helpInformation()).toContain(
        `Usage: deepqueue ${name}`,
      );
    }
    const keys = program.commands.find((c) => c.name() === "keys");
    expect(keys?.commands.map((c) => c.name())).toEqual([
      "create",
      "list",
      "revoke",
      "seal-secrets",
      "update",
      "rotate-secret",
    ]);
  });
});

describe("deepqueue dev", () => {
  it("comes up on free ports, keeps data and the dev key across a restart, and stops cleanly", async () => {
    const { startDev } = await import("../local/dev.ts");
    const dataDir = mkdtempSync(join(tmpdir(), "dq-dev-"));
    const env: NodeJS.ProcessEnv = { DEEPQUEUE_DATA_DIR: dataDir, LOG_LEVEL: "silent" };
    const ports = { ingest: 0, sqs: 0, dynamo: 0, sim: 0, metrics: 0 };
    const first = await startDev({ env, ports, functions: false });
    const key = first.apiKey;
    expect(readFileSync(join(dataDir, "dev-api-key"), "utf8").trim()).toBe(key);
    expect(first.exports.join("\n")).toContain("AWS_ENDPOINT_URL_SQS=");
    await first.stop();

    const second = await startDev({
      env: { DEEPQUEUE_DATA_DIR: dataDir, LOG_LEVEL: "silent" },
      ports,
      functions: false,
    });
    try {
      expect(second.apiKey).toBe(key);
      const { DynamoTenantStore: Store } = await import("../functions/shared/stores/tenants.ts");
      const { createDynamoClient } = await import("../functions/shared/clients.ts");
      const ddb = createDynamoClient({ endpoint: second.emulators.dynamoEndpoint });
      const dev = await new Store(ddb, "deepqueue").findByKeyHash(hashApiKey(key));
      expect(dev?.tenant).toBe("dev");
      expect(dev?.daily_requests).toBeNull();
      ddb.destroy();
    } finally {
      await second.stop();
    }
  });
});

describe("deepqueue dev's banner", () => {
  it("lists the dashboard under ingest, or why it did not start", async () => {
    const { withDashboard } = await import("./commands/dev.ts");
    const banner =
      "deepqueue dev is up\n\n  ingest      http://127.0.0.1:8080\n  SQS         http://127.0.0.1:4566";
    const url = "http://127.0.0.1:8090";
    expect(withDashboard(banner, { url, open: true, stop: async () => undefined }).split("\n")).toEqual([
      "deepqueue dev is up",
      "",
      "  ingest      http://127.0.0.1:8080",
      "  dashboard   http://127.0.0.1:8090",
      "  SQS         http://127.0.0.1:4566",
    ]);
    expect(withDashboard(banner, "(not started: port in use)")).toContain(
      "  dashboard   (not started: port in use)",
    );
  });
});
