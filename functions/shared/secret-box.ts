import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { LRUCache } from "lru-cache";
import { DeepqueueError } from "./errors.ts";

/**
 * Encryption of secrets at rest (tenants' webhook secrets): AES-256-GCM
 * envelope encryption. Each secret gets its own random data key; the secret
 * is encrypted with the data key, the data key with the key-encryption key
 * (32 bytes from a Kubernetes Secret, `DEEPQUEUE_SECRETS_KEY`). The
 * ciphertext is bound to its context (the tenant's name, as GCM additional
 * data): a sealed secret copied onto another tenant's item does not open.
 *
 * Sealed form: `dqenc:v1:<key id>:<wrapped data key>:<ciphertext>` (base64url
 * parts; each part is 12-byte IV ‖ ciphertext ‖ 16-byte tag). The key id (the
 * first 8 hex digits of the key's SHA-256) lets `DEEPQUEUE_SECRETS_PREVIOUS_KEYS`
 * keep opening secrets sealed with an older key during a key rotation.
 *
 * With `DEEPQUEUE_SECRETS_KMS_KEY_ID`, AWS KMS makes and wraps the data keys
 * instead (GenerateDataKey / Decrypt with the tenant as encryption context,
 * https://docs.aws.amazon.com/kms/latest/developerguide/concepts.html#enveloping):
 * `dqenc:v1:kms:<KMS ciphertext blob>:<ciphertext>`. Secrets sealed with a
 * local key still open while `DEEPQUEUE_SECRETS_KEY` is set, so a deployment
 * can move to KMS and re-seal (`keys seal-secrets --reseal`) at its pace.
 */
export interface SecretBox {
  seal(plaintext: string, context: string): Promise<string>;
  open(sealed: string, context: string): Promise<string>;
}

const PREFIX = "dqenc:v1:";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** True for a value `seal` produced. */
export function isSealed(value: string): boolean {
  return value.startsWith(PREFIX);
}

/** A sealed value that cannot be opened: wrong key, wrong context, or tampered with. */
export class SecretBoxError extends DeepqueueError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SecretBoxError";
  }
}

function keyId(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 8);
}

function encrypt(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url");
}

function decrypt(key: Buffer, sealed: string, aad: string): Buffer {
  const raw = Buffer.from(sealed, "base64url");
  if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretBoxError("sealed value is truncated");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
}

/** Parses a base64 (or base64url) key of exactly 32 bytes; throws naming `name`. */
function parseKey(value: string, name = "key"): Buffer {
  // Node's base64 decoder reads the URL-safe alphabet too.
  const key = Buffer.from(value.trim(), "base64");
  if (key.length !== 32)
    throw new SecretBoxError(`${name} must be 32 bytes, base64-encoded (got ${key.length})`);
  return key;
}

/**
 * Envelope encryption with local key-encryption keys: `current` seals, every
 * key (current and previous) opens what it sealed.
 *
 * @example
 * const box = new AesGcmSecretBox(parseKey(process.env.DEEPQUEUE_SECRETS_KEY!));
 * const sealed = await box.seal("whsec_…", "acme");
 * await box.open(sealed, "acme"); // "whsec_…"
 */
export class AesGcmSecretBox implements SecretBox {
  readonly #current: { id: string; key: Buffer };
  readonly #keys: Map<string, Buffer>;

  constructor(current: Buffer, previous: readonly Buffer[] = []) {
    this.#current = { id: keyId(current), key: current };
    this.#keys = new Map([...previous, current].map((k) => [keyId(k), k]));
  }

  async seal(plaintext: string, context: string): Promise<string> {
    const dataKey = randomBytes(32);
    const { id, key } = this.#current;
    const wrapped = encrypt(key, dataKey, `dek:${id}:${context}`);
    const body = encrypt(dataKey, Buffer.from(plaintext, "utf8"), `secret:${context}`);
    return `${PREFIX}${id}:${wrapped}:${body}`;
  }

  async open(sealed: string, context: string): Promise<string> {
    if (!isSealed(sealed)) throw new SecretBoxError("not a sealed value");
    const [id, wrapped, body] = sealed.slice(PREFIX.length).split(":");
    const key = id ? this.#keys.get(id) : undefined;
    if (!key || !wrapped || !body) {
      throw new SecretBoxError(`sealed with key ${id ?? "?"}, which this process does not hold`);
    }
    try {
      const dataKey = decrypt(key, wrapped, `dek:${id}:${context}`);
      return decrypt(dataKey, body, `secret:${context}`).toString("utf8");
    } catch (error) {
      if (error instanceof SecretBoxError) throw error;
      throw new SecretBoxError("a sealed secret does not open (wrong key or context, or tampered with)", {
        cause: error,
      });
    }
  }
}

/** The two KMS calls envelope encryption needs (the SDK adapter below; tests pass a fake). */
export interface DataKeyService {
  generateDataKey(context: string): Promise<{ plaintext: Uint8Array; ciphertext: Uint8Array }>;
  decrypt(ciphertext: Uint8Array, context: string): Promise<Uint8Array>;
}

/**
 * AWS KMS as the DataKeyService: `@aws-sdk/client-kms`, loaded on first use.
 *
 * @example const kms = awsKms("alias/deepqueue-secrets", "eu-west-1");
 */
function awsKms(keyId: string, region: string): DataKeyService {
  let client: Promise<{
    send: (command: unknown) => Promise<unknown>;
    commands: typeof import("@aws-sdk/client-kms");
  }>;
  const kms = () => {
    client ??= import("@aws-sdk/client-kms").then((commands) => {
      const c = new commands.KMSClient({ region });
      return { send: (command: unknown) => c.send(command as never), commands };
    });
    return client;
  };
  const encryptionContext = (context: string) => ({ deepqueue_tenant: context });
  return {
    async generateDataKey(context) {
      const { send, commands } = await kms();
      const out = (await send(
        new commands.GenerateDataKeyCommand({
          KeyId: keyId,
          KeySpec: "AES_256",
          EncryptionContext: encryptionContext(context),
        }),
      )) as { Plaintext?: Uint8Array; CiphertextBlob?: Uint8Array };
      if (!out.Plaintext || !out.CiphertextBlob) throw new SecretBoxError("KMS returned no data key");
      return { plaintext: out.Plaintext, ciphertext: out.CiphertextBlob };
    },
    async decrypt(ciphertext, context) {
      const { send, commands } = await kms();
      const out = (await send(
        new commands.DecryptCommand({
          KeyId: keyId,
          CiphertextBlob: ciphertext,
          EncryptionContext: encryptionContext(context),
        }),
      )) as { Plaintext?: Uint8Array };
      if (!out.Plaintext) throw new SecretBoxError("KMS returned no plaintext");
      return out.Plaintext;
    },
  };
}

/**
 * Envelope encryption with data keys from KMS. Opened secrets are kept in a
 * small in-memory map (by sealed value), so a tenant lookup does not cost a
 * KMS call each time. `local` opens what a local key sealed before.
 *
 * @example const box = new KmsSecretBox(awsKms(keyId, region));
 */
export class KmsSecretBox implements SecretBox {
  readonly #kms: DataKeyService;
  readonly #local: AesGcmSecretBox | undefined;
  /** Opened secrets by sealed value (and context), the least recently used dropped first. */
  readonly #opened: LRUCache<string, string>;

  constructor(kms: DataKeyService, options: { local?: AesGcmSecretBox; cacheSize?: number } = {}) {
    this.#kms = kms;
    this.#local = options.local;
    this.#opened = new LRUCache<string, string>({ max: options.cacheSize ?? 1000 });
  }

  async seal(plaintext: string, context: string): Promise<string> {
    const dataKey = await this.#kms.generateDataKey(context);
    const body = encrypt(Buffer.from(dataKey.plaintext), Buffer.from(plaintext, "utf8"), `secret:${context}`);
    return `${PREFIX}kms:${Buffer.from(dataKey.ciphertext).toString("base64url")}:${body}`;
  }

  async open(sealed: string, context: string): Promise<string> {
    if (!isSealed(sealed)) throw new SecretBoxError("not a sealed value");
    const [id, wrapped, body] = sealed.slice(PREFIX.length).split(":");
    if (id !== "kms") {
      if (!this.#local)
        throw new SecretBoxError(`sealed with key ${id ?? "?"}, which this process does not hold`);
      return this.#local.open(sealed, context);
    }
    const cacheKey = `${context}\u0000${sealed}`;
    const hit = this.#opened.get(cacheKey);
    if (hit !== undefined) return hit;
    if (!wrapped || !body) throw new SecretBoxError("sealed value is truncated");
    let plaintext: string;
    try {
      const dataKey = await this.#kms.decrypt(Buffer.from(wrapped, "base64url"), context);
      plaintext = decrypt(Buffer.from(dataKey), body, `secret:${context}`).toString("utf8");
    } catch (error) {
      if (error instanceof SecretBoxError) throw error;
      throw new SecretBoxError("a KMS-sealed secret does not open (wrong key or context, or tampered with)", {
        cause: error,
      });
    }
    this.#opened.set(cacheKey, plaintext);
    return plaintext;
  }
}

/**
 * The box configured by `DEEPQUEUE_SECRETS_KMS_KEY_ID` (KMS data keys) or
 * `DEEPQUEUE_SECRETS_KEY` (and `DEEPQUEUE_SECRETS_PREVIOUS_KEYS`, comma-separated),
 * or undefined when neither is set (secrets stay in plain text).
 *
 * @example const secrets = secretBoxFromEnv(env); // new DynamoTenantStore(ddb, prefix, { secrets })
 */
export function secretBoxFromEnv(env: {
  DEEPQUEUE_SECRETS_KEY?: string | undefined;
  DEEPQUEUE_SECRETS_PREVIOUS_KEYS?: string | undefined;
  DEEPQUEUE_SECRETS_KMS_KEY_ID?: string | undefined;
  AWS_REGION?: string | undefined;
}): SecretBox | undefined {
  const previous = (env.DEEPQUEUE_SECRETS_PREVIOUS_KEYS ?? "")
    .split(",")
    .filter((k) => k.trim() !== "")
    .map((k) => parseKey(k, "DEEPQUEUE_SECRETS_PREVIOUS_KEYS"));
  const local = env.DEEPQUEUE_SECRETS_KEY
    ? new AesGcmSecretBox(parseKey(env.DEEPQUEUE_SECRETS_KEY, "DEEPQUEUE_SECRETS_KEY"), previous)
    : undefined;
  if (env.DEEPQUEUE_SECRETS_KMS_KEY_ID) {
    const kms = awsKms(env.DEEPQUEUE_SECRETS_KMS_KEY_ID, env.AWS_REGION ?? "us-east-1");
    return new KmsSecretBox(kms, local ? { local } : {});
  }
  return local;
}
