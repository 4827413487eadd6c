import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { baseEnvSchema, loadEnv } from "./env.ts";
import { ConfigError } from "./errors.ts";
import {
  AesGcmSecretBox,
  type DataKeyService,
  isSealed,
  KmsSecretBox,
  SecretBoxError,
  secretBoxFromEnv,
} from "./secret-box.ts";

const key = () => randomBytes(32);

describe("AesGcmSecretBox", () => {
  it("seals to an opaque value that opens only in its own context", async () => {
    const box = new AesGcmSecretBox(key());
    const sealed = await box.seal("whsec_c2VjcmV0c2VjcmV0", "acme");
    expect(isSealed(sealed)).toBe(true);
    expect(sealed).not.toContain("c2VjcmV0c2VjcmV0");
    // A fresh data key and IV each time: the same secret never seals the same way twice.
    expect(await box.seal("whsec_c2VjcmV0c2VjcmV0", "acme")).not.toBe(sealed);
    expect(await box.open(sealed, "acme")).toBe("whsec_c2VjcmV0c2VjcmV0");
    // Copied onto another tenant's item, it does not open.
    await expect(box.open(sealed, "evil")).rejects.toThrow(SecretBoxError);
  });

  it("refuses a tampered value and a foreign key; opens with a previous key after a rotation", async () => {
    const old = key();
    const sealed = await new AesGcmSecretBox(old).seal("whsec_x", "acme");
    const last = sealed.at(-5) === "A" ? "B" : "A";
    const tampered = `${sealed.slice(0, -5)}${last}${sealed.slice(-4)}`;
    await expect(new AesGcmSecretBox(old).open(tampered, "acme")).rejects.toThrow(SecretBoxError);
    await expect(new AesGcmSecretBox(key()).open(sealed, "acme")).rejects.toThrow(/does not hold/);
    const rotated = new AesGcmSecretBox(key(), [old]);
    expect(await rotated.open(sealed, "acme")).toBe("whsec_x");
    // New secrets are sealed with the new key.
    const fresh = await rotated.seal("whsec_y", "acme");
    await expect(new AesGcmSecretBox(old).open(fresh, "acme")).rejects.toThrow(/does not hold/);
  });

  it("comes from DEEPQUEUE_SECRETS_KEY, checked at start-up", () => {
    expect(secretBoxFromEnv({})).toBeUndefined();
    const env = loadEnv(baseEnvSchema, { DEEPQUEUE_SECRETS_KEY: key().toString("base64") });
    expect(secretBoxFromEnv(env)).toBeInstanceOf(AesGcmSecretBox);
    expect(() => loadEnv(baseEnvSchema, { DEEPQUEUE_SECRETS_KEY: "dG9vIHNob3J0" })).toThrow(ConfigError);
    expect(() => loadEnv(baseEnvSchema, { DEEPQUEUE_SECRETS_KEY: "dG9vIHNob3J0" })).toThrow(
      /DEEPQUEUE_SECRETS_KEY/,
    );
  });
});

describe("KmsSecretBox", () => {
  /** KMS's two calls with its semantics (a master key that never leaves, the encryption context checked). */
  function fakeKms() {
    const master = new AesGcmSecretBox(randomBytes(32));
    const calls = { generate: 0, decrypt: 0 };
    const kms: DataKeyService = {
      async generateDataKey(context) {
        calls.generate += 1;
        const plaintext = randomBytes(32);
        const sealed = await master.seal(plaintext.toString("base64"), `kms:${context}`);
        return { plaintext, ciphertext: Buffer.from(sealed) };
      },
      async decrypt(ciphertext, context) {
        calls.decrypt += 1;
        return Buffer.from(await master.open(Buffer.from(ciphertext).toString(), `kms:${context}`), "base64");
      },
    };
    return { kms, calls };
  }

  it("seals with a KMS data key, opens once per secret, and checks the tenant context", async () => {
    const { kms, calls } = fakeKms();
    const box = new KmsSecretBox(kms);
    const sealed = await box.seal("whsec_a21za21za21z", "acme");
    expect(sealed.startsWith("dqenc:v1:kms:")).toBe(true);
    expect(sealed).not.toContain("a21za21za21z");
    expect(await box.open(sealed, "acme")).toBe("whsec_a21za21za21z");
    expect(await box.open(sealed, "acme")).toBe("whsec_a21za21za21z");
    expect(calls.decrypt).toBe(1);
    await expect(new KmsSecretBox(kms).open(sealed, "evil")).rejects.toThrow(SecretBoxError);
  });

  it("still opens secrets sealed with the local key, for a move to KMS", async () => {
    const local = new AesGcmSecretBox(randomBytes(32));
    const before = await local.seal("whsec_b2xkb2xkb2xk", "acme");
    const box = new KmsSecretBox(fakeKms().kms, { local });
    expect(await box.open(before, "acme")).toBe("whsec_b2xkb2xkb2xk");
    await expect(new KmsSecretBox(fakeKms().kms).open(before, "acme")).rejects.toThrow(/does not hold/);
  });

  it("is chosen by DEEPQUEUE_SECRETS_KMS_KEY_ID", () => {
    expect(secretBoxFromEnv({ DEEPQUEUE_SECRETS_KMS_KEY_ID: "alias/deepqueue" })).toBeInstanceOf(
      KmsSecretBox,
    );
  });
});
