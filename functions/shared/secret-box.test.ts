import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { baseEnvSchema, loadEnv } from "./env.ts";
import { ConfigError } from "./errors.ts";
import { AesGcmSecretBox, isSealed, SecretBoxError, secretBoxFromEnv } from "./secret-box.ts";

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
