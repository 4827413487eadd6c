import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createDynamoClient } from "../functions/shared/clients.ts";
import { newWebhookSecret } from "../functions/shared/ids.ts";
import { activeSecrets, DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { DEV_WEBHOOK_SECRET_FILE, devBanner, startDev } from "./dev.ts";

const ports = { ingest: 0, sqs: 0, dynamo: 0, sim: 0, metrics: 0 };

describe("the dev tenant's webhook secret", () => {
  it("is kept beside its API key (mode 600), shown by the banner, and follows a rotation at the next start", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "dq-dev-secret-"));
    const env = () => ({ DEEPQUEUE_DATA_DIR: dataDir, LOG_LEVEL: "silent" });
    const file = join(dataDir, DEV_WEBHOOK_SECRET_FILE);

    const first = await startDev({ env: env(), ports, functions: false });
    let rotated: string;
    try {
      expect(first.webhookSecret).toMatch(/^whsec_/);
      expect(readFileSync(file, "utf8").trim()).toBe(first.webhookSecret);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(join(dataDir, "dev-api-key")).mode & 0o777).toBe(0o600);
      // It is the secret callbacks are signed with.
      const ddb = createDynamoClient({ endpoint: first.emulators.dynamoEndpoint });
      const tenants = new DynamoTenantStore(ddb, "deepqueue");
      expect(activeSecrets((await tenants.get("dev"))!)).toEqual([first.webhookSecret]);
      expect(devBanner(first)).toContain(`export DEEPQUEUE_WEBHOOK_SECRET=${first.webhookSecret}`);
      // What `deepqueue keys rotate-secret --tenant dev` does while dev runs.
      rotated = newWebhookSecret();
      await tenants.rotateSecret("dev", rotated);
      ddb.destroy();
    } finally {
      await first.stop();
    }

    const second = await startDev({ env: env(), ports, functions: false });
    try {
      expect(second.webhookSecret).toBe(rotated);
      expect(readFileSync(file, "utf8").trim()).toBe(rotated);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      await second.stop();
    }
  });
});
