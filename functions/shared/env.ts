import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { DEFAULT_PREFIX, PREFIX_PATTERN } from "./names.ts";

/**
 * The common variables (docs/api.md#configuration), parsed once at start-up. A missing or malformed variable fails
 * with its name (`ConfigError`), never at the first request.
 */
export const baseEnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  AWS_REGION: z.string().min(1).default("us-east-1"),
  AWS_ENDPOINT_URL_SQS: z.url().optional(),
  AWS_ENDPOINT_URL_DYNAMODB: z.url().optional(),
  /** S3 (the files bucket); in dev and tests the SQS emulator serves it on its own port. */
  AWS_ENDPOINT_URL_S3: z.url().optional(),
  DEEPQUEUE_PREFIX: z
    .string()
    .regex(PREFIX_PATTERN, "1-20 characters of a-z, 0-9 and '-'")
    .default(DEFAULT_PREFIX),
  INFERENCE_URL: z.url().default("http://127.0.0.1:8000/v1"),
  INFERENCE_API_KEY: z.string().min(1).optional(),
  DEEPQUEUE_MODEL: z.string().min(1).default("deepseek-chat"),
  DEEPQUEUE_FALLBACK_MODEL: z.string().min(1).optional(),
  /**
   * Base URL of the server that serves DEEPQUEUE_FALLBACK_MODEL, when it is not INFERENCE_URL's
   * (on Kubernetes the fallback model runs on its own, smaller GPU Deployment). @default INFERENCE_URL
   */
  DEEPQUEUE_FALLBACK_INFERENCE_URL: z.url().optional(),
  /** The model's context window in tokens (vLLM `--max-model-len`), used to refuse prompts early. */
  DEEPQUEUE_MAX_MODEL_LEN: z.coerce.number().int().min(256).default(4096),
  /** Dev mode: loopback callbacks allowed, short retry schedules. `deepqueue dev` sets it. */
  DEEPQUEUE_DEV_MODE: z
    .enum(["true", "false", "1", "0"])
    .default("false")
    .transform((v) => v === "true" || v === "1"),
  DEEPQUEUE_DEV_API_KEY: z.string().min(16).optional(),
  DEEPQUEUE_DEV_DAILY_REQUESTS: z.coerce.number().int().min(1).optional(),
  DEEPQUEUE_DATA_DIR: z.string().min(1).default(".deepqueue"),
  /** Port of the small /healthz + /metrics server of each SQS worker. */
  DEEPQUEUE_WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9090),
  /**
   * Key-encryption key for secrets at rest (webhook secrets): 32 random bytes, base64
   * (`openssl rand -base64 32`), from a Kubernetes Secret. Unset: secrets are stored in plain text.
   */
  DEEPQUEUE_SECRETS_KEY: z
    .string()
    .refine((v) => Buffer.from(v.trim(), "base64").length === 32, "must be 32 bytes, base64-encoded")
    .optional(),
  /**
   * AWS KMS key (id, ARN or alias) that makes and wraps the data keys of secrets at rest instead
   * of DEEPQUEUE_SECRETS_KEY (which, when also set, still opens what it sealed).
   */
  DEEPQUEUE_SECRETS_KMS_KEY_ID: z.string().min(1).optional(),
  /** Earlier keys, comma-separated, still opening secrets sealed before a key rotation. */
  DEEPQUEUE_SECRETS_PREVIOUS_KEYS: z
    .string()
    .refine(
      (v) => v.split(",").every((k) => k.trim() === "" || Buffer.from(k.trim(), "base64").length === 32),
      "each key must be 32 bytes, base64-encoded",
    )
    .optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type BaseEnv = z.infer<typeof baseEnvSchema>;

/**
 * Parses `source` (default `process.env`) with `schema`; throws a ConfigError
 * naming the first bad variable.
 *
 * @example
 * const env = loadEnv(); // BaseEnv
 * const batcherEnv = loadEnv(baseEnvSchema.extend({ BATCH_SIZE: z.coerce.number().default(10) }));
 */
export function loadEnv<S extends z.ZodType = typeof baseEnvSchema>(
  schema: S = baseEnvSchema as unknown as S,
  source: Record<string, string | undefined> = process.env,
): z.infer<S> {
  // Empty strings mean "unset", as in a shell `FOO= cmd`.
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const variable = String(issue?.path[0] ?? "environment");
  throw new ConfigError(variable, issue?.message ?? "invalid value");
}
