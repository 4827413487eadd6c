import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../shared/env.ts";

/**
 * Ingest's own tunables on top of the common variables (docs/api.md#configuration). Parsed once at start:
 * a typo fails at start-up with the variable's name.
 */
export const ingestEnvSchema = baseEnvSchema.extend({
  /** JWKS URL; when set, `Authorization: Bearer <JWT>` is accepted besides API keys. */
  DEEPQUEUE_JWKS_URL: z.url().optional(),
  /** Required `iss` of accepted JWTs (unchecked when unset). */
  DEEPQUEUE_JWT_ISSUER: z.string().min(1).optional(),
  /** Required `aud` of accepted JWTs (unchecked when unset). */
  DEEPQUEUE_JWT_AUDIENCE: z.string().min(1).optional(),
  /** The JWT claim that names the tenant. */
  DEEPQUEUE_JWT_TENANT_CLAIM: z.string().min(1).default("tenant"),
  /** How long an API key → tenant lookup is cached in memory (also how long a revoked key may still work). */
  DEEPQUEUE_AUTH_CACHE_SECONDS: z.coerce.number().min(0).max(3600).default(30),
  /** How long an Idempotency-Key is remembered (at least 24 hours, as documented). */
  DEEPQUEUE_IDEMPOTENCY_TTL_SECONDS: z.coerce.number().int().min(86_400).default(86_400),
  /** After this long an unfinished Idempotency-Key (an ingest replica died mid-accept) may be taken over. */
  DEEPQUEUE_IDEMPOTENCY_IN_PROGRESS_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  /** Per-tenant requests per second on each ingest replica (token bucket); 0 = no rate limit. */
  DEEPQUEUE_RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).default(0),
  /** Burst size of that token bucket; defaults to one second's worth. */
  DEEPQUEUE_RATE_LIMIT_BURST: z.coerce.number().int().min(1).optional(),
});

export type IngestEnv = z.infer<typeof ingestEnvSchema>;

/** @example const env = loadIngestEnv(); // throws ConfigError naming a bad variable */
export function loadIngestEnv(source: Record<string, string | undefined> = process.env): IngestEnv {
  return loadEnv(ingestEnvSchema, source);
}
