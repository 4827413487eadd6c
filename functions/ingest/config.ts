import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";

/** JWT signature algorithms ingest can accept: asymmetric only, so a leaked verification key signs nothing. */
export const JWT_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

/** JWT checks (auth.ts); each has its DEEPQUEUE_JWT_* variable. */
export const JWT_DEFAULTS = {
  tenantClaim: "tenant",
  algorithms: JWT_ALGORITHMS,
  maxAgeSeconds: 3600,
  clockToleranceSeconds: 30,
} as const;

/** The authenticator's tenant lookup (auth.ts). */
export const AUTHENTICATOR_DEFAULTS = {
  /** How long a key → tenant lookup is kept (DEEPQUEUE_AUTH_CACHE_SECONDS). */
  cacheMs: 30_000,
  /** Most lookups kept; the least recently used go first. */
  cacheSize: 10_000,
  /** Unknown keys are remembered for a shorter time: a key made a moment ago should work soon. */
  unknownCacheMs: 5_000,
} as const;

/** Admission (admission.ts). */
export const ADMISSION_DEFAULTS = {
  /** Submissions in progress on one replica above which new ones get 503 (DEEPQUEUE_INGEST_MAX_IN_FLIGHT). */
  maxInFlight: 512,
  /** Body bytes that cost one more unit of abuse budget when refused. */
  abuseBytesPerUnit: 16_384,
  /** Milliseconds of tokenizing a refused prompt that cost one more unit. */
  abuseMsPerUnit: 100,
} as const;

/**
 * Ingest's own tunables on top of the common variables (docs/api.md#configuration). Parsed once at start:
 * a typo fails at start-up with the variable's name.
 */
const ingestEnvSchema = baseEnvSchema.extend({
  /** JWKS URL; when set, `Authorization: Bearer <JWT>` is accepted besides API keys (issuer and audience then required). */
  DEEPQUEUE_JWKS_URL: z.url().optional(),
  /** Required `iss` of accepted JWTs; required with DEEPQUEUE_JWKS_URL. */
  DEEPQUEUE_JWT_ISSUER: z.string().min(1).optional(),
  /** Required `aud` of accepted JWTs; required with DEEPQUEUE_JWKS_URL. */
  DEEPQUEUE_JWT_AUDIENCE: z.string().min(1).optional(),
  /** The JWT claim that names the tenant. */
  DEEPQUEUE_JWT_TENANT_CLAIM: z.string().min(1).default(JWT_DEFAULTS.tenantClaim),
  /** Accepted JWT signature algorithms, comma-separated; asymmetric only (no HS*, no none). */
  DEEPQUEUE_JWT_ALGORITHMS: z
    .string()
    .default(JWT_ALGORITHMS.join(","))
    .transform((v) => v.split(",").map((a) => a.trim()))
    .pipe(z.array(z.enum(JWT_ALGORITHMS)).min(1)),
  /** Oldest accepted JWT, by its `iat` (required), in seconds. */
  DEEPQUEUE_JWT_MAX_AGE_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(86_400)
    .default(JWT_DEFAULTS.maxAgeSeconds),
  /** Clock skew allowed on `exp`, `nbf` and `iat`, in seconds. */
  DEEPQUEUE_JWT_CLOCK_TOLERANCE_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(300)
    .default(JWT_DEFAULTS.clockToleranceSeconds),
  /** How long an API key → tenant lookup is cached in memory (also how long a revoked key may still work). */
  DEEPQUEUE_AUTH_CACHE_SECONDS: z.coerce
    .number()
    .min(0)
    .max(3600)
    .default(AUTHENTICATOR_DEFAULTS.cacheMs / 1000),
  /** How long an Idempotency-Key is remembered (at least 24 hours, as documented). */
  DEEPQUEUE_IDEMPOTENCY_TTL_SECONDS: z.coerce.number().int().min(86_400).default(86_400),
  /** After this long an unfinished Idempotency-Key (an ingest replica died mid-accept) may be taken over. */
  DEEPQUEUE_IDEMPOTENCY_IN_PROGRESS_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  /** Per-tenant requests per second on each ingest replica (token bucket); 0 = no rate limit. */
  DEEPQUEUE_RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).default(100),
  /** Burst size of that token bucket; defaults to two seconds' worth. */
  DEEPQUEUE_RATE_LIMIT_BURST: z.coerce.number().int().min(1).optional(),
  /**
   * Per-tenant budget of refused submissions on each replica, in units: a refusal (400, 413, 422)
   * costs 1 plus 1 per 16 KiB of body. When spent, the tenant gets 429 until it refills. 0 = off.
   */
  DEEPQUEUE_ABUSE_BUDGET: z.coerce.number().int().min(0).default(60),
  /** Units of abuse budget given back per second. */
  DEEPQUEUE_ABUSE_REFILL_PER_SECOND: z.coerce.number().min(0.01).default(1),
  /** Prompts longer than this many characters are tokenized on a worker thread. */
  DEEPQUEUE_TOKENIZER_OFFLOAD_CHARS: z.coerce.number().int().min(0).default(16_384),
  /** Worker threads counting long prompts (each holds a copy of the tokenizer, ~100 MB). */
  DEEPQUEUE_TOKENIZER_THREADS: z.coerce.number().int().min(1).max(16).default(1),
  /** Long prompts waiting for a tokenizer thread before new ones get 503 + Retry-After. */
  DEEPQUEUE_TOKENIZER_QUEUE: z.coerce.number().int().min(1).default(16),
  /**
   * Also answer GET /metrics on the public port (off: metrics are served on
   * DEEPQUEUE_WORKER_METRICS_PORT, which the Knative route does not expose).
   */
  DEEPQUEUE_INGEST_PUBLIC_METRICS: z
    .enum(["true", "false", "1", "0"])
    .default("false")
    .transform((v) => v === "true" || v === "1"),
  /** Submissions in progress on one replica before new ones get 503 + Retry-After. */
  DEEPQUEUE_INGEST_MAX_IN_FLIGHT: z.coerce.number().int().min(1).default(ADMISSION_DEFAULTS.maxInFlight),
});

/** Ingest refuses to start with a JWKS URL but no issuer or audience: a token minted for another service must not pass. */
const ingestEnvChecked = ingestEnvSchema.superRefine((env, ctx) => {
  if (!env.DEEPQUEUE_JWKS_URL) return;
  for (const name of ["DEEPQUEUE_JWT_ISSUER", "DEEPQUEUE_JWT_AUDIENCE"] as const) {
    if (!env[name]) {
      ctx.addIssue({ code: "custom", path: [name], message: "required when DEEPQUEUE_JWKS_URL is set" });
    }
  }
});

export type IngestEnv = z.infer<typeof ingestEnvSchema>;

/** @example const env = loadIngestEnv(); // throws ConfigError naming a bad variable */
export function loadIngestEnv(source: Record<string, string | undefined> = process.env): IngestEnv {
  return loadEnv(ingestEnvChecked, source);
}
