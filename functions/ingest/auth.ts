import { timingSafeEqual } from "node:crypto";
import { createRemoteJWKSet, type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from "jose";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { ConfigError, UnauthorizedError, UnavailableError } from "../shared/errors.ts";
import { ReadThroughCache } from "../shared/read-through.ts";
import type { SeenIds } from "../shared/stores/idempotency.ts";
import { activeSecrets, hashApiKey, type Tenant, type TenantStore } from "../shared/stores/tenants.ts";
import { AUTHENTICATOR_DEFAULTS, JWT_ALGORITHMS, JWT_DEFAULTS } from "./config.ts";

/** Standard Webhooks' timestamp tolerance (the `standardwebhooks` package enforces it). */
const SIGNATURE_TOLERANCE_SECONDS = 5 * 60;
/** A seen `webhook-id` is remembered for twice the tolerance: past that its timestamp is stale anyway. */
const SEEN_ID_TTL_SECONDS = 2 * SIGNATURE_TOLERANCE_SECONDS;

/** Three base64url segments; the signature may be empty (`alg: none`), so that such a token is refused by the JWT check, not mistaken for an API key. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Asymmetric JWS algorithms: a leaked verification key can sign nothing (one list, in config.ts). */
const ASYMMETRIC_JWT_ALGORITHMS = JWT_ALGORITHMS;

export interface JwtSettings {
  /** JWKS document URL (the issuer's `jwks_uri`). */
  jwksUrl: string;
  /** Required `iss`. */
  issuer: string;
  /** Required `aud` (one of the token's audiences). */
  audience: string;
  /** The claim that names the tenant. @default JWT_DEFAULTS.tenantClaim */
  tenantClaim?: string;
  /** Accepted `alg` values; asymmetric only. @default JWT_DEFAULTS.algorithms */
  algorithms?: readonly string[];
  /** Oldest accepted token by its (required) `iat`. @default JWT_DEFAULTS.maxAgeSeconds */
  maxAgeSeconds?: number;
  /** Clock skew allowed on `exp`, `nbf` and `iat`. @default JWT_DEFAULTS.clockToleranceSeconds */
  clockToleranceSeconds?: number;
  /** Injectable key source (tests); default: jose's remote JWKS set with its own caching. */
  keys?: JWTVerifyGetKey;
}

export interface AuthenticatorOptions {
  tenants: TenantStore;
  seen: SeenIds;
  jwt?: JwtSettings;
  /** How long a key → tenant lookup is kept (the tenant lookup). @default AUTHENTICATOR_DEFAULTS.cacheMs */
  cacheMs?: number;
  /** Most lookups kept (least recently used go first). @default AUTHENTICATOR_DEFAULTS.cacheSize */
  cacheSize?: number;
  /** Clock (tests). @default Date.now */
  now?: () => number;
}

export interface Principal {
  tenant: Tenant;
  method: "api_key" | "jwt";
  /** The `webhook-id` a valid signature came with (claimed in the seen-ids table). */
  signatureId?: string;
}

type Headers = Record<string, string | undefined>;

/**
 * Who is calling: `Authorization: Bearer <api key>` (SHA-256 looked up, kept
 * in a small LRU for `cacheMs`), or `Bearer <JWT>` verified against a JWKS
 * when configured; then, for tenants that require it or when the headers are
 * present, the Standard Webhooks signature over the raw body
 * (https://www.standardwebhooks.com/), with each `webhook-id` accepted once.
 *
 * @example
 * const auth = new Authenticator({ tenants, seen });
 * const who = await auth.authenticate(event.headers, rawBody);
 */
export class Authenticator {
  readonly #tenants: TenantStore;
  readonly #seen: SeenIds;
  /** API key hash / JWT tenant name → tenant (undefined: not found), kept `cacheMs`. */
  readonly #tenantLookup: ReadThroughCache<Tenant | undefined>;
  readonly #now: () => number;
  readonly #jwt?: Required<JwtSettings>;

  constructor(options: AuthenticatorOptions) {
    this.#tenants = options.tenants;
    this.#seen = options.seen;
    const cacheMs = options.cacheMs ?? AUTHENTICATOR_DEFAULTS.cacheMs;
    this.#now = options.now ?? Date.now;
    this.#tenantLookup = new ReadThroughCache({
      max: options.cacheSize ?? AUTHENTICATOR_DEFAULTS.cacheSize,
      // Unknown keys are remembered for less: a key made a moment ago should work soon.
      ttlMs: (tenant) => (tenant ? cacheMs : Math.min(cacheMs, AUTHENTICATOR_DEFAULTS.unknownCacheMs)),
      now: () => this.#now(),
    });
    if (options.jwt) this.#jwt = checkedJwt(options.jwt);
  }

  /**
   * Throws UnauthorizedError (401) or UnavailableError (503 when the tenant table cannot be read).
   * `signed: false` skips the body signature (reads have no body to sign).
   */
  async authenticate(
    headers: Headers,
    rawBody: string,
    options: { signed?: boolean } = {},
  ): Promise<Principal> {
    const match = headers.authorization?.match(/^Bearer[ ]+(\S+)\s*$/i);
    if (!match?.[1]) throw new UnauthorizedError("missing Authorization: Bearer <api key>");
    const token = match[1];
    const principal: Principal =
      this.#jwt && JWT_SHAPE.test(token)
        ? await this.#fromJwt(token, headers["x-api-key"])
        : await this.#fromApiKey(token);
    if (options.signed === false) return principal;
    const signatureId = await this.#checkSignature(principal.tenant, headers, rawBody);
    return signatureId ? { ...principal, signatureId } : principal;
  }

  /**
   * The tenant an `Authorization: Bearer <api key>` header names, from the
   * lookup cache only (no store call, no JWT verification): undefined when not
   * cached. For cheap refusals before the body is read; never a substitute for
   * `authenticate`.
   */
  peek(authorization: string | undefined): Tenant | undefined {
    const token = authorization?.match(/^Bearer[ ]+(\S+)\s*$/i)?.[1];
    if (!token || (this.#jwt && JWT_SHAPE.test(token))) return undefined;
    const tenant = this.#tenantLookup.peek(`k:${hashApiKey(token)}`);
    return tenant && !tenant.revoked_at ? tenant : undefined;
  }

  /** Forgets the signature's `webhook-id` of a request that was not accepted, so its retry passes. */
  async releaseSignature(principal: Principal): Promise<void> {
    if (principal.signatureId) await this.#seen.release(principal.tenant.tenant, principal.signatureId);
  }

  async #fromApiKey(key: string): Promise<Principal> {
    const hash = hashApiKey(key);
    const tenant = await this.#cached(`k:${hash}`, () => this.#tenants.findByKeyHash(hash));
    // The index lookup matched on equality; compare again in constant time so a
    // cache or index quirk can never admit a different key.
    const stored = Buffer.from(tenant?.key_hash ?? "", "hex");
    const presented = Buffer.from(hash, "hex");
    if (
      !tenant ||
      tenant.revoked_at ||
      stored.length !== presented.length ||
      !timingSafeEqual(stored, presented)
    ) {
      throw new UnauthorizedError("invalid API key");
    }
    if (tenant.require_jwt_and_api_key) {
      throw new UnauthorizedError(
        "this tenant requires both a JWT (Authorization: Bearer <JWT>) and its API key (X-API-Key)",
      );
    }
    return { tenant, method: "api_key" };
  }

  async #fromJwt(token: string, apiKey: string | undefined): Promise<Principal> {
    const jwt = this.#jwt!;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, jwt.keys, {
        algorithms: [...jwt.algorithms],
        issuer: jwt.issuer,
        audience: jwt.audience,
        requiredClaims: ["exp", "iat"],
        maxTokenAge: jwt.maxAgeSeconds,
        clockTolerance: jwt.clockToleranceSeconds,
        currentDate: new Date(this.#now()),
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError)) {
        // The JWKS could not be fetched: we cannot tell, so nothing is accepted.
        throw new UnavailableError("the JWT signing keys cannot be fetched; nothing was accepted", {
          cause: error,
        });
      }
      throw new UnauthorizedError(`invalid JWT (${error.code})`, { cause: error });
    }
    const name = payload[jwt.tenantClaim];
    if (typeof name !== "string" || name === "") {
      throw new UnauthorizedError(`the JWT has no "${jwt.tenantClaim}" claim`);
    }
    const tenant = await this.#cached(`t:${name}`, () => this.#tenants.get(name));
    if (!tenant || tenant.revoked_at) throw new UnauthorizedError("the JWT's tenant is unknown or revoked");
    if (tenant.require_jwt_and_api_key && !this.#isTenantKey(tenant, apiKey)) {
      throw new UnauthorizedError("this tenant requires its API key in X-API-Key besides the JWT");
    }
    return { tenant, method: "jwt" };
  }

  /** Whether `apiKey` is the tenant's current key (constant-time compare of the hashes). */
  #isTenantKey(tenant: Tenant, apiKey: string | undefined): boolean {
    if (!apiKey || !tenant.key_hash) return false;
    const stored = Buffer.from(tenant.key_hash, "hex");
    const presented = Buffer.from(hashApiKey(apiKey.trim()), "hex");
    return stored.length === presented.length && timingSafeEqual(stored, presented);
  }

  async #checkSignature(tenant: Tenant, headers: Headers, rawBody: string): Promise<string | undefined> {
    const id = headers["webhook-id"];
    const timestamp = headers["webhook-timestamp"];
    const signature = headers["webhook-signature"];
    const presented = id !== undefined || timestamp !== undefined || signature !== undefined;
    if (!presented) {
      if (tenant.require_signatures) {
        throw new UnauthorizedError(
          "this tenant requires signed requests (webhook-id, webhook-timestamp, webhook-signature)",
        );
      }
      return undefined;
    }
    if (!id || !timestamp || !signature) {
      throw new UnauthorizedError(
        "incomplete signature headers: webhook-id, webhook-timestamp and webhook-signature are all required",
      );
    }
    let lastProblem = "no webhook secret signs for this tenant";
    let verified = false;
    let secrets: string[];
    try {
      secrets = activeSecrets(tenant);
    } catch (error) {
      // Sealed secrets and no key to open them: a deployment fault, not the caller's.
      throw new UnavailableError("signatures cannot be verified right now; nothing was accepted", {
        cause: error,
      });
    }
    for (const secret of secrets) {
      try {
        new Webhook(secret).verify(
          rawBody,
          { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature },
          { jsonParse: false },
        );
        verified = true;
        break;
      } catch (error) {
        if (!(error instanceof WebhookVerificationError)) throw error;
        lastProblem = error.message;
        // A stale timestamp is stale for every secret.
        if (/timestamp|Signature Headers/i.test(error.message)) break;
      }
    }
    if (!verified) throw new UnauthorizedError(`bad or stale signature: ${lastProblem}`);
    let first: boolean;
    try {
      first = await this.#seen.claim(tenant.tenant, id, SEEN_ID_TTL_SECONDS);
    } catch (error) {
      throw new UnavailableError(undefined, { cause: error });
    }
    if (!first) throw new UnauthorizedError("replayed webhook-id: this signed request was already received");
    return id;
  }

  /** The cached lookup (shared/read-through.ts: one table read per key at a time, renewed ahead). */
  async #cached(key: string, load: () => Promise<Tenant | undefined>): Promise<Tenant | undefined> {
    try {
      return await this.#tenantLookup.get(key, load);
    } catch (error) {
      throw new UnavailableError(undefined, { cause: error });
    }
  }
}

/** JWT settings with their defaults, refused when they could let a foreign or forged token through. */
function checkedJwt(settings: JwtSettings): Required<JwtSettings> {
  const jwt = { ...JWT_DEFAULTS, ...settings };
  if (!jwt.issuer || !jwt.audience) {
    throw new ConfigError(
      "DEEPQUEUE_JWKS_URL",
      "JWT settings need an issuer and an audience: a token minted for another service must not pass",
    );
  }
  const symmetric = jwt.algorithms.filter(
    (a) => !(ASYMMETRIC_JWT_ALGORITHMS as readonly string[]).includes(a),
  );
  if (symmetric.length > 0 || jwt.algorithms.length === 0) {
    throw new ConfigError(
      "DEEPQUEUE_JWT_ALGORITHMS",
      `JWT algorithms must be asymmetric (${ASYMMETRIC_JWT_ALGORITHMS.join(", ")}); got ${jwt.algorithms.join(", ")}`,
    );
  }
  return { ...jwt, keys: settings.keys ?? createRemoteJWKSet(new URL(settings.jwksUrl)) };
}
