import { createHash } from "node:crypto";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { DegradationLevel } from "../../../events/index.ts";
import { isConditionFailure } from "../dynamo.ts";
import { DeepqueueError } from "../errors.ts";
import { tableName } from "../names.ts";
import { INDEXES } from "../resources.ts";
import { isSealed, type SecretBox } from "../secret-box.ts";

/** Default daily request quota for tenants (docs/api.md#tenants-and-quotas), as the source design had. */
const DEFAULT_DAILY_REQUESTS = 500;
/** How long the previous webhook secret keeps signing after a rotation (both signatures are sent). */
export const SECRET_ROTATION_GRACE_SECONDS = 24 * 3600;

/** Which degradation levels (docs/api.md#tenants-and-quotas) a tenant allows; all on by default. */
export type DegradationSettings = Record<DegradationLevel, boolean>;

export interface WebhookSecret {
  secret: string;
  created_at: string;
  /** Set on the previous secret when a new one is issued; it stops signing after this time. */
  expires_at?: string;
}

export interface Tenant {
  tenant: string;
  /** SHA-256 (hex) of the API key; the key itself is never stored. Absent once revoked. */
  key_hash?: string;
  /** The key's first characters, to tell keys apart in `keys list`. */
  key_hint?: string;
  webhook_secrets: WebhookSecret[];
  /** Requests per UTC day; null = unlimited. */
  daily_requests: number | null;
  /** Prompt + completion tokens per UTC day; null = unlimited. */
  daily_tokens: number | null;
  /** Refuse requests that are not signed with Standard Webhooks headers. */
  require_signatures: boolean;
  /**
   * Two factors: every request must carry both a JWT (`Authorization: Bearer <JWT>`)
   * and the tenant's API key (`X-API-Key`); either alone is refused. Absent = false.
   */
  require_jwt_and_api_key?: boolean;
  /** Answer from the cache even when temperature > 0 (the body's `cache`). */
  cache_opt_in: boolean;
  degradation: DegradationSettings;
  created_at: string;
  revoked_at?: string;
}

export class TenantExistsError extends DeepqueueError {
  readonly tenant: string;
  constructor(tenant: string, options?: { cause?: unknown }) {
    super(`tenant "${tenant}" already exists`, options);
    this.name = "TenantExistsError";
    this.tenant = tenant;
  }
}

export class TenantNotFoundError extends DeepqueueError {
  readonly tenant: string;
  constructor(tenant: string) {
    super(`tenant "${tenant}" does not exist`);
    this.name = "TenantNotFoundError";
    this.tenant = tenant;
  }
}

/** SHA-256 hex of an API key. Keys are 256-bit random, so a fast hash is enough (no dictionary to attack). */
export function hashApiKey(apiKey: string): string {
  return createHash("sha256").update(apiKey).digest("hex");
}

/** A tenant's webhook secret is sealed and this process has no key to open it. */
export class SecretsLockedError extends DeepqueueError {
  readonly tenant: string;
  constructor(tenant: string) {
    super(
      `tenant "${tenant}": its webhook secrets are encrypted at rest and this process has no DEEPQUEUE_SECRETS_KEY`,
    );
    this.name = "SecretsLockedError";
    this.tenant = tenant;
  }
}

/** The secrets that sign now: the newest first, then any previous one still in its grace period. */
export function activeSecrets(
  tenant: Pick<Tenant, "tenant" | "webhook_secrets">,
  now = new Date(),
): string[] {
  const secrets = tenant.webhook_secrets
    .filter((s) => !s.expires_at || Date.parse(s.expires_at) > now.getTime())
    .map((s) => s.secret);
  // A store without the key hands sealed values through; signing with one must fail loudly.
  if (secrets.some(isSealed)) throw new SecretsLockedError(tenant.tenant);
  return secrets;
}

export interface NewTenant {
  tenant: string;
  apiKey: string;
  webhookSecret: string;
  dailyRequests?: number | null;
  dailyTokens?: number | null;
  requireSignatures?: boolean;
  requireJwtAndApiKey?: boolean;
  cacheOptIn?: boolean;
  degradation?: Partial<DegradationSettings>;
}

/** What `update` may change: quotas and switches. */
export type TenantChanges = Partial<
  Pick<
    Tenant,
    | "daily_requests"
    | "daily_tokens"
    | "require_signatures"
    | "require_jwt_and_api_key"
    | "cache_opt_in"
    | "degradation"
  >
>;

/** Tenants, their hashed keys, quotas and webhook secrets. */
export interface TenantStore {
  create(input: NewTenant): Promise<Tenant>;
  get(tenant: string): Promise<Tenant | undefined>;
  /** The live tenant whose API key hashes to `keyHash`. */
  findByKeyHash(keyHash: string): Promise<Tenant | undefined>;
  list(): Promise<Tenant[]>;
  revoke(tenant: string): Promise<Tenant>;
  /** Replaces the API key (dev tenant with a fixed key); returns the tenant. */
  setApiKey(tenant: string, apiKey: string): Promise<Tenant>;
  /** Issues `secret` as the signing secret; the previous one signs on for `graceSeconds`. */
  rotateSecret(tenant: string, secret: string, graceSeconds?: number): Promise<Tenant>;
  /** Updates quotas and switches. */
  update(tenant: string, changes: TenantChanges): Promise<Tenant>;
}

export interface TenantStoreOptions {
  /**
   * Encrypts webhook secrets at rest (secretBoxFromEnv): sealed on write, opened
   * on read; plain-text secrets written before are still read (see migrateSecrets).
   * Without it, secrets are written in plain text and sealed ones are handed
   * through sealed (activeSecrets then refuses to use them).
   */
  secrets?: SecretBox | undefined;
}

/**
 * The DynamoDB adapter of TenantStore: one item per tenant (`pk` = name) and a
 * GSI on `key_hash` for authentication (keys only: the secrets stay on the item).
 *
 * @example const tenants = new DynamoTenantStore(ddb, "deepqueue", { secrets: secretBoxFromEnv(env) });
 */
export class DynamoTenantStore implements TenantStore {
  readonly table: string;
  readonly #box: SecretBox | undefined;
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    prefix: string,
    options: TenantStoreOptions = {},
  ) {
    this.table = tableName(prefix, "tenants");
    this.#box = options.secrets;
  }

  /** Seals plain-text secrets when a key is configured. */
  async #sealAll(tenant: string, secrets: WebhookSecret[]): Promise<WebhookSecret[]> {
    const box = this.#box;
    if (!box) return secrets;
    return Promise.all(
      secrets.map(async (s) => (isSealed(s.secret) ? s : { ...s, secret: await box.seal(s.secret, tenant) })),
    );
  }

  /** The item as a Tenant, its sealed secrets opened (left sealed without a key). */
  async #toTenant(item: Record<string, unknown>): Promise<Tenant> {
    const tenant = toTenant(item);
    const box = this.#box;
    if (!box || !tenant.webhook_secrets?.some((s) => isSealed(s.secret))) return tenant;
    const webhook_secrets = await Promise.all(
      tenant.webhook_secrets.map(async (s) =>
        isSealed(s.secret) ? { ...s, secret: await box.open(s.secret, tenant.tenant) } : s,
      ),
    );
    return { ...tenant, webhook_secrets };
  }

  /**
   * Seals every plain-text webhook secret in the table (a no-op without a key);
   * with `reseal`, also opens and seals again the sealed ones (after a key
   * rotation, or a move to KMS). Safe to repeat and to run beside live traffic
   * (each write is conditional on the secrets it read). Returns how many
   * tenants were rewritten.
   *
   * @example await new DynamoTenantStore(ddb, prefix, { secrets }).migrateSecrets();
   */
  async migrateSecrets(options: { reseal?: boolean } = {}): Promise<number> {
    const box = this.#box;
    if (!box) return 0;
    let migrated = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(new ScanCommand({ TableName: this.table, ExclusiveStartKey: start }));
      for (const item of out.Items ?? []) {
        const current = (item.webhook_secrets ?? []) as WebhookSecret[];
        if (current.length === 0 || (!options.reseal && current.every((s) => isSealed(s.secret)))) continue;
        const tenant = item.pk as string;
        const opened = options.reseal
          ? await Promise.all(
              current.map(async (s) =>
                isSealed(s.secret) ? { ...s, secret: await box.open(s.secret, tenant) } : s,
              ),
            )
          : current;
        const sealed = await this.#sealAll(tenant, opened);
        try {
          await this.ddb.send(
            new UpdateCommand({
              TableName: this.table,
              Key: { pk: item.pk },
              UpdateExpression: "SET webhook_secrets = :sealed",
              // Unchanged since it was read: a rotation writes a new first secret.
              ConditionExpression: "webhook_secrets[0].secret = :first AND size(webhook_secrets) = :n",
              ExpressionAttributeValues: {
                ":sealed": sealed,
                ":first": current[0]!.secret,
                ":n": current.length,
              },
            }),
          );
          migrated += 1;
        } catch (error) {
          // Rotated meanwhile: the rotation wrote sealed secrets already.
          if (!isConditionFailure(error)) throw error;
        }
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return migrated;
  }

  async create(input: NewTenant): Promise<Tenant> {
    const now = new Date().toISOString();
    const tenant: Tenant = {
      tenant: input.tenant,
      key_hash: hashApiKey(input.apiKey),
      key_hint: input.apiKey.slice(0, 7),
      webhook_secrets: [{ secret: input.webhookSecret, created_at: now }],
      daily_requests: input.dailyRequests === undefined ? DEFAULT_DAILY_REQUESTS : input.dailyRequests,
      daily_tokens: input.dailyTokens ?? null,
      require_signatures: input.requireSignatures ?? false,
      ...(input.requireJwtAndApiKey ? { require_jwt_and_api_key: true } : {}),
      cache_opt_in: input.cacheOptIn ?? false,
      degradation: { cache: true, fallback: true, static: true, ...input.degradation },
      created_at: now,
    };
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: tenant.tenant,
            ...tenant,
            webhook_secrets: await this.#sealAll(tenant.tenant, tenant.webhook_secrets),
          },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new TenantExistsError(input.tenant, { cause: error });
      throw error;
    }
    return tenant;
  }

  async get(tenant: string): Promise<Tenant | undefined> {
    const out = await this.ddb.send(
      new GetCommand({ TableName: this.table, Key: { pk: tenant }, ConsistentRead: true }),
    );
    return out.Item ? this.#toTenant(out.Item) : undefined;
  }

  async findByKeyHash(keyHash: string): Promise<Tenant | undefined> {
    // The index projects keys only (older tables: everything): it names the tenant, the item has the rest.
    const out = await this.ddb.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: INDEXES.byKeyHash,
        KeyConditionExpression: "key_hash = :h",
        ExpressionAttributeValues: { ":h": keyHash },
        ProjectionExpression: "pk",
        Limit: 1,
      }),
    );
    const pk = out.Items?.[0]?.pk;
    if (typeof pk !== "string") return undefined;
    const tenant = await this.get(pk);
    // The index is eventually consistent: the item itself must still carry this key.
    if (!tenant || tenant.revoked_at || tenant.key_hash !== keyHash) return undefined;
    return tenant;
  }

  async list(): Promise<Tenant[]> {
    const items: Tenant[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.ddb.send(new ScanCommand({ TableName: this.table, ExclusiveStartKey: start }));
      for (const item of out.Items ?? []) items.push(await this.#toTenant(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return items.sort((a, b) => a.tenant.localeCompare(b.tenant));
  }

  async revoke(tenant: string): Promise<Tenant> {
    return this.#update(tenant, "SET revoked_at = :now REMOVE key_hash", {
      ":now": new Date().toISOString(),
    });
  }

  async setApiKey(tenant: string, apiKey: string): Promise<Tenant> {
    return this.#update(tenant, "SET key_hash = :h, key_hint = :hint REMOVE revoked_at", {
      ":h": hashApiKey(apiKey),
      ":hint": apiKey.slice(0, 7),
    });
  }

  async rotateSecret(
    tenant: string,
    secret: string,
    graceSeconds = SECRET_ROTATION_GRACE_SECONDS,
  ): Promise<Tenant> {
    const current = await this.get(tenant);
    if (!current) throw new TenantNotFoundError(tenant);
    const now = new Date();
    const graceEnd = new Date(now.getTime() + graceSeconds * 1000).toISOString();
    // Keep only the newest previous secret, for its grace period: at most two sign at once.
    const previous = activeSecrets(current, now)
      .slice(0, 1)
      .map((s) => ({ ...current.webhook_secrets.find((w) => w.secret === s)!, expires_at: graceEnd }));
    const secrets: WebhookSecret[] = [{ secret, created_at: now.toISOString() }, ...previous];
    return this.#update(tenant, "SET webhook_secrets = :s", { ":s": await this.#sealAll(tenant, secrets) });
  }

  async update(tenant: string, changes: TenantChanges): Promise<Tenant> {
    const entries = Object.entries(changes).filter(([, v]) => v !== undefined);
    if (entries.length === 0) {
      const current = await this.get(tenant);
      if (!current) throw new TenantNotFoundError(tenant);
      return current;
    }
    const names = Object.fromEntries(entries.map(([k], i) => [`#k${i}`, k]));
    const values = Object.fromEntries(entries.map(([, v], i) => [`:v${i}`, v]));
    const set = entries.map((_, i) => `#k${i} = :v${i}`).join(", ");
    return this.#update(tenant, `SET ${set}`, values, names);
  }

  async #update(
    tenant: string,
    expression: string,
    values: Record<string, unknown>,
    names?: Record<string, string>,
  ): Promise<Tenant> {
    try {
      const out = await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: tenant },
          UpdateExpression: expression,
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: values,
          ExpressionAttributeNames: names,
          ReturnValues: "ALL_NEW",
        }),
      );
      return this.#toTenant(out.Attributes!);
    } catch (error) {
      if (isConditionFailure(error)) throw new TenantNotFoundError(tenant);
      throw error;
    }
  }
}

function toTenant(item: Record<string, unknown>): Tenant {
  const { pk: _pk, ...rest } = item;
  return rest as unknown as Tenant;
}
