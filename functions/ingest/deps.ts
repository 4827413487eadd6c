import type { SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AcceptedResponse } from "../../events/index.ts";
import { createDynamoClient, createSqsClient } from "../shared/clients.ts";
import { createLogger, type Logger } from "../shared/logger.ts";
import { DynamoConversationStore } from "../shared/stores/conversations.ts";
import { DynamoIdempotencyStore, DynamoSeenIds } from "../shared/stores/idempotency.ts";
import { DynamoRequestStore } from "../shared/stores/requests.ts";
import { DynamoTenantStore } from "../shared/stores/tenants.ts";
import { DynamoUsageStore } from "../shared/stores/usage.ts";
import { Authenticator, type JwtSettings } from "./auth.ts";
import { type IngestEnv, loadIngestEnv } from "./config.ts";
import type { IngestDeps } from "./ingest.ts";
import { RateLimiter } from "./rate-limit.ts";

export interface IngestDepsOverrides {
  sqs?: SQSClient;
  ddb?: DynamoDBDocumentClient;
  logger?: Logger;
  /** Replaces parts of the JWT settings (tests inject a local key set). */
  jwt?: Partial<JwtSettings>;
  checkCallback?: IngestDeps["checkCallback"];
}

/**
 * Every dependency of ingest, built from its environment (docs/api.md#configuration plus
 * functions/ingest/config.ts): SDK clients, the DynamoDB stores, the
 * authenticator with its key cache, the rate limiter.
 *
 * @example const deps = createIngestDeps(loadIngestEnv(), { sqs, ddb });
 */
export function createIngestDeps(env: IngestEnv, overrides: IngestDepsOverrides = {}): IngestDeps {
  const sqs = overrides.sqs ?? createSqsClient({ env });
  const ddb = overrides.ddb ?? createDynamoClient({ env });
  const prefix = env.DEEPQUEUE_PREFIX;
  const tenants = new DynamoTenantStore(ddb, prefix);
  const jwksUrl = overrides.jwt?.jwksUrl ?? env.DEEPQUEUE_JWKS_URL;
  const jwt: JwtSettings | undefined = jwksUrl
    ? {
        jwksUrl,
        tenantClaim: env.DEEPQUEUE_JWT_TENANT_CLAIM,
        ...(env.DEEPQUEUE_JWT_ISSUER ? { issuer: env.DEEPQUEUE_JWT_ISSUER } : {}),
        ...(env.DEEPQUEUE_JWT_AUDIENCE ? { audience: env.DEEPQUEUE_JWT_AUDIENCE } : {}),
        ...overrides.jwt,
      }
    : undefined;
  return {
    settings: {
      defaultModel: env.DEEPQUEUE_MODEL,
      maxModelLen: env.DEEPQUEUE_MAX_MODEL_LEN,
      devMode: env.DEEPQUEUE_DEV_MODE,
      prefix,
    },
    sqs,
    requests: new DynamoRequestStore(ddb, prefix),
    usage: new DynamoUsageStore(ddb, prefix),
    idempotency: new DynamoIdempotencyStore<AcceptedResponse>(ddb, prefix, {
      ttlSeconds: env.DEEPQUEUE_IDEMPOTENCY_TTL_SECONDS,
      inProgressSeconds: env.DEEPQUEUE_IDEMPOTENCY_IN_PROGRESS_SECONDS,
    }),
    conversations: new DynamoConversationStore(ddb, prefix),
    auth: new Authenticator({
      tenants,
      seen: new DynamoSeenIds(ddb, prefix),
      cacheMs: env.DEEPQUEUE_AUTH_CACHE_SECONDS * 1000,
      ...(jwt ? { jwt } : {}),
    }),
    limiter: new RateLimiter({
      perSecond: env.DEEPQUEUE_RATE_LIMIT_PER_SECOND,
      ...(env.DEEPQUEUE_RATE_LIMIT_BURST ? { burst: env.DEEPQUEUE_RATE_LIMIT_BURST } : {}),
    }),
    logger: overrides.logger ?? createLogger({ name: "ingest", level: env.LOG_LEVEL }),
    ...(overrides.checkCallback ? { checkCallback: overrides.checkCallback } : {}),
  };
}

/** @example const deps = createIngestDepsFromEnv(); // process.env, ConfigError naming a bad variable */
export function createIngestDepsFromEnv(
  source: Record<string, string | undefined> = process.env,
  overrides: IngestDepsOverrides = {},
): IngestDeps {
  return createIngestDeps(loadIngestEnv(source), overrides);
}
