import { randomBytes } from "node:crypto";
import { GetQueueUrlCommand } from "@aws-sdk/client-sqs";
import { QueryCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../../test/helpers/emulators.ts";
import { provisionTenant } from "../provision.ts";
import { INDEXES } from "../resources.ts";
import { AesGcmSecretBox, isSealed } from "../secret-box.ts";
import {
  activeSecrets,
  DynamoTenantStore,
  hashApiKey,
  SecretsLockedError,
  TenantExistsError,
  TenantNotFoundError,
} from "./tenants.ts";

describe("tenants in DynamoDB", () => {
  let stack: TestStack;
  let tenants: DynamoTenantStore;
  beforeAll(async () => {
    stack = await startTestStack();
    tenants = new DynamoTenantStore(stack.ddb, stack.prefix);
  });
  afterAll(() => stack.stop());

  it("provisions a tenant: hashed key, whsec_ secret, result queue, default quota", async () => {
    const made = await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "acme" });
    expect(made.api_key).toMatch(/^dq_[A-Za-z0-9_-]{43}$/);
    expect(made.webhook_secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32}$/);
    expect(made.daily_requests).toBe(500);
    const url = await stack.sqs.send(new GetQueueUrlCommand({ QueueName: `${stack.prefix}-results-acme` }));
    expect(made.result_queue_url).toBe(url.QueueUrl);

    // Only the hash is stored, nowhere the key itself.
    const raw = await stack.ddb.send(new ScanCommand({ TableName: tenants.table }));
    expect(JSON.stringify(raw.Items)).not.toContain(made.api_key);
    expect((await tenants.findByKeyHash(hashApiKey(made.api_key)))?.tenant).toBe("acme");
    expect(await tenants.findByKeyHash(hashApiKey("dq_wrong"))).toBeUndefined();
  });

  it("refuses a duplicate and an invalid name, creating nothing", async () => {
    await expect(
      provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "acme" }),
    ).rejects.toBeInstanceOf(TenantExistsError);
    await expect(
      provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "Bad_Name!" }),
    ).rejects.toThrow(/tenant name/);
    expect(await tenants.get("Bad_Name!")).toBeUndefined();
  });

  it("revokes: the key stops authenticating", async () => {
    const made = await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "gone" });
    await tenants.revoke("gone");
    expect(await tenants.findByKeyHash(hashApiKey(made.api_key))).toBeUndefined();
    await expect(tenants.revoke("nobody")).rejects.toBeInstanceOf(TenantNotFoundError);
  });

  it("rotates the webhook secret keeping the previous one for the grace period", async () => {
    const made = await provisionTenant({ sqs: stack.sqs, tenants, prefix: stack.prefix }, { tenant: "rot" });
    const rotated = await tenants.rotateSecret("rot", "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3", 3600);
    expect(activeSecrets(rotated)).toEqual(["whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3", made.webhook_secret]);
    const later = new Date(Date.now() + 3601 * 1000);
    expect(activeSecrets(rotated, later)).toEqual(["whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3"]);
  });

  it("lists tenants sorted, and updates quotas", async () => {
    const names = (await tenants.list()).map((t) => t.tenant);
    expect(names).toEqual([...names].sort());
    const updated = await tenants.update("acme", { daily_requests: 10, cache_opt_in: true });
    expect(updated).toMatchObject({ daily_requests: 10, cache_opt_in: true });
  });

  describe("webhook secrets at rest", () => {
    const key = randomBytes(32);
    const sealedStore = () =>
      new DynamoTenantStore(stack.ddb, stack.prefix, { secrets: new AesGcmSecretBox(key) });
    const rawItems = async () =>
      JSON.stringify((await stack.ddb.send(new ScanCommand({ TableName: tenants.table }))).Items);

    it("are sealed in the table and in the key index, and read back in the clear", async () => {
      const store = sealedStore();
      const made = await provisionTenant(
        { sqs: stack.sqs, tenants: store, prefix: stack.prefix },
        { tenant: "vault" },
      );
      expect(await rawItems()).not.toContain(made.webhook_secret);
      const item = (await stack.ddb.send(new ScanCommand({ TableName: tenants.table }))).Items!.find(
        (i) => i.pk === "vault",
      )!;
      expect(isSealed(item.webhook_secrets[0].secret)).toBe(true);
      // The key index projects keys only: nothing of the secrets is copied into it.
      const indexed = await stack.ddb.send(
        new QueryCommand({
          TableName: tenants.table,
          IndexName: INDEXES.byKeyHash,
          KeyConditionExpression: "key_hash = :h",
          ExpressionAttributeValues: { ":h": hashApiKey(made.api_key) },
        }),
      );
      expect(Object.keys(indexed.Items![0]!).sort()).toEqual(["key_hash", "pk"]);
      // Lookups open them.
      expect(activeSecrets((await store.findByKeyHash(hashApiKey(made.api_key)))!)).toEqual([
        made.webhook_secret,
      ]);
      const rotated = await store.rotateSecret("vault", "whsec_dmF1bHR2YXVsdHZhdWx0dmF1bHR2YXVs", 3600);
      expect(activeSecrets(rotated)).toEqual(["whsec_dmF1bHR2YXVsdHZhdWx0dmF1bHR2YXVs", made.webhook_secret]);
      expect(await rawItems()).not.toContain("dmF1bHR2YXVsdHZhdWx0dmF1bHR2YXVs");
      // A process without the key cannot sign with them, and says why.
      const locked = (await tenants.get("vault"))!;
      expect(() => activeSecrets(locked)).toThrow(SecretsLockedError);
    });

    it("migrates plain-text secrets written before, once, and they still verify", async () => {
      const plain = await provisionTenant(
        { sqs: stack.sqs, tenants, prefix: stack.prefix },
        { tenant: "legacy" },
      );
      expect(await rawItems()).toContain(plain.webhook_secret);
      const store = sealedStore();
      // Read before the migration: plain text passes through.
      expect(activeSecrets((await store.get("legacy"))!)).toEqual([plain.webhook_secret]);
      expect(await store.migrateSecrets()).toBeGreaterThanOrEqual(1);
      expect(await rawItems()).not.toContain(plain.webhook_secret);
      expect(activeSecrets((await store.get("legacy"))!)).toEqual([plain.webhook_secret]);
      expect(await store.migrateSecrets()).toBe(0);
    });

    it("re-seals with a new key after a key rotation", async () => {
      const plain = await provisionTenant(
        { sqs: stack.sqs, tenants: sealedStore(), prefix: stack.prefix },
        { tenant: "rekey" },
      );
      const next = randomBytes(32);
      const rotating = new DynamoTenantStore(stack.ddb, stack.prefix, {
        secrets: new AesGcmSecretBox(next, [key]),
      });
      expect(await rotating.migrateSecrets({ reseal: true })).toBeGreaterThanOrEqual(1);
      // The old key can go: everything opens with the new one alone.
      const renewed = new DynamoTenantStore(stack.ddb, stack.prefix, { secrets: new AesGcmSecretBox(next) });
      expect(activeSecrets((await renewed.get("rekey"))!)).toEqual([plain.webhook_secret]);
    });
  });
});
