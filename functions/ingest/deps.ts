import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AcceptedResponse } from "../../events/index.ts";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createLogger, type Logger } from "../shared/logger.ts";
import { secretBoxFromEnv } from "../shared/secret-box.ts";
import { DynamoConversationStore } from "../shared/stores/conversations.ts";
import { DynamoIdempotencyStore, DynamoSeenIds } from "../shared/stores/idempotency.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { DynamoUsageStore } from "../shared/stores/usage.ts";
import { TokenizerPool } from "../shared/tokenizer-pool.ts";
import { Admission, type AdmissionOptions } from "./admission.ts";
import { Authenticator, type JwtSettings } from "./auth.ts";
import { type IngestEnv, loadIngestEnv } from "./config.ts";
import { type IngestOptions, ingestMetrics } from "./ingest.ts";
import { RateLimiter } from "./rate-limit.ts";

export interface IngestDepsOverrides {
  sqs?: SQSClient;
  ddb?: DynamoDBDocumentClient;
  logger?: Logger;
  /** Replaces parts of the JWT settings (tests inject a local key set). */
  jwt?: Partial<JwtSettings>;
  checkCallback?: IngestOptions["checkCallback"];
  /** Counts prompt tokens (tests inject a slow or busy one). */
  tokenizer?: AdmissionOptions["tokenizer"];
}

/**
 * Every dependency of ingest, built from its environment (docs/api.md#configuration plus
 * functions/ingest/config.ts): SDK clients, the DynamoDB stores, the
 * authenticator with its tenant lookup, admission (rate limit, abuse budget, tokenizer threads).
 *
 * @example const deps = ingestDeps(loadIngestEnv(), { sqs, ddb });
 */
export function ingestDeps(env: IngestEnv, overrides: IngestDepsOverrides = {}): IngestOptions {
  const ddb = overrides.ddb ?? createDynamoClient({ env });
  const prefix = env.DEEPQUEUE_PREFIX;
  return {
    sqs: overrides.sqs ?? createSqsClient({ env }),
    prefix,
    defaultModel: env.DEEPQUEUE_MODEL,
    devMode: env.DEEPQUEUE_DEV_MODE,
    requests: new DynamoRequestStore(ddb, prefix),
    usage: new DynamoUsageStore(ddb, prefix),
    idempotency: new DynamoIdempotencyStore<AcceptedResponse>(ddb, prefix, {
      ttlSeconds: env.DEEPQUEUE_IDEMPOTENCY_TTL_SECONDS,
      inProgressSeconds: env.DEEPQUEUE_IDEMPOTENCY_IN_PROGRESS_SECONDS,
    }),
    conversations: new DynamoConversationStore(ddb, prefix),
    auth: new Authenticator({
      tenants: new DynamoTenantStore(ddb, prefix, { secrets: secretBoxFromEnv(env) }),
      seen: new DynamoSeenIds(ddb, prefix),
      cacheMs: env.DEEPQUEUE_AUTH_CACHE_SECONDS * 1000,
      jwt: jwtSettings(env, overrides.jwt),
    }),
    admission: admissionFromEnv(env, overrides.tokenizer),
    logger: overrides.logger ?? createLogger({ name: "ingest", level: env.LOG_LEVEL }),
    checkCallback: overrides.checkCallback,
  };
}

/** JWT settings when a JWKS URL is configured (or overridden), else undefined: API keys only. */
function jwtSettings(env: IngestEnv, overrides: Partial<JwtSettings> = {}): JwtSettings | undefined {
  const jwksUrl = overrides.jwksUrl ?? env.DEEPQUEUE_JWKS_URL;
  if (!jwksUrl) return undefined;
  return {
    jwksUrl,
    // config.ts refuses a JWKS URL without both; an override may bring its own.
    issuer: env.DEEPQUEUE_JWT_ISSUER ?? "",
    audience: env.DEEPQUEUE_JWT_AUDIENCE ?? "",
    tenantClaim: env.DEEPQUEUE_JWT_TENANT_CLAIM,
    algorithms: env.DEEPQUEUE_JWT_ALGORITHMS,
    maxAgeSeconds: env.DEEPQUEUE_JWT_MAX_AGE_SECONDS,
    clockToleranceSeconds: env.DEEPQUEUE_JWT_CLOCK_TOLERANCE_SECONDS,
    ...overrides,
  };
}

function admissionFromEnv(env: IngestEnv, tokenizer?: AdmissionOptions["tokenizer"]): Admission {
  const perSecond = env.DEEPQUEUE_RATE_LIMIT_PER_SECOND;
  return new Admission({
    maxModelLen: env.DEEPQUEUE_MAX_MODEL_LEN,
    tokenizer:
      tokenizer ??
      new TokenizerPool({
        offloadChars: env.DEEPQUEUE_TOKENIZER_OFFLOAD_CHARS,
        threads: env.DEEPQUEUE_TOKENIZER_THREADS,
        maxQueue: env.DEEPQUEUE_TOKENIZER_QUEUE,
      }),
    limiter: new RateLimiter({
      perSecond,
      burst: env.DEEPQUEUE_RATE_LIMIT_BURST ?? Math.max(1, Math.ceil(2 * perSecond)),
    }),
    abuse: new RateLimiter({
      perSecond: env.DEEPQUEUE_ABUSE_BUDGET > 0 ? env.DEEPQUEUE_ABUSE_REFILL_PER_SECOND : 0,
      burst: Math.max(1, env.DEEPQUEUE_ABUSE_BUDGET),
    }),
    maxInFlight: env.DEEPQUEUE_INGEST_MAX_IN_FLIGHT,
    onRateLimited: (kind) => ingestMetrics.quotaRejections.inc({ kind }),
  });
}

/** @example const deps = ingestDepsFromEnv(); // process.env, ConfigError naming a bad variable */
export function ingestDepsFromEnv(
  env: Record<string, string | undefined> = process.env,
  overrides: IngestDepsOverrides = {},
): IngestOptions {
  return ingestDeps(loadIngestEnv(env), overrides);
}
