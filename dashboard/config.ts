import { z } from "zod";
import { baseEnvSchema, loadEnv } from "../functions/shared/env.ts";
import type { DashboardOptions } from "./server.ts";

/** Dashboard tunables and their defaults (each also has an environment variable below). */
export const DASHBOARD_DEFAULTS = {
  port: 8090,
  host: "127.0.0.1",
  /** How often queues, model servers and requests are read and pushed to open pages. */
  pollSeconds: 2,
  /** How often they are read while no page is open (the sparklines' history keeps going). */
  idlePollSeconds: 15,
  /** How much queue and model-server history (sparklines, TTFT window) is kept in memory. */
  historyMinutes: 15,
  /** Tenants, their usage and their result queues (several reads per tenant): read every this many seconds. */
  tenantPollSeconds: 10,
  /** Dead-letter queues are peeked (at most 10 messages each) every this many seconds, only when not empty. */
  dlqPeekSeconds: 10,
  /** How long a login lasts. */
  sessionHours: 12,
  /** Requests in the recent list. */
  recentLimit: 50,
} as const;

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|::1|\[::1\])$/;

/** @example isLoopbackHost("127.0.0.1") // true */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * The dashboard's environment: the base variables (endpoints, prefix,
 * INFERENCE_URL) plus its own.
 */
const dashboardEnvSchema = baseEnvSchema.extend({
  /** Required unless the dashboard is on loopback in dev mode. Compared in constant time. */
  DEEPQUEUE_ADMIN_TOKEN: z.string().min(16, "at least 16 characters").optional(),
  DEEPQUEUE_DASHBOARD_PORT: z.coerce.number().int().min(0).max(65535).default(DASHBOARD_DEFAULTS.port),
  DEEPQUEUE_DASHBOARD_HOST: z.string().min(1).default(DASHBOARD_DEFAULTS.host),
  DEEPQUEUE_DASHBOARD_POLL_SECONDS: z.coerce
    .number()
    .min(0.2)
    .max(60)
    .default(DASHBOARD_DEFAULTS.pollSeconds),
  DEEPQUEUE_DASHBOARD_IDLE_POLL_SECONDS: z.coerce
    .number()
    .min(0.2)
    .max(600)
    .default(DASHBOARD_DEFAULTS.idlePollSeconds),
  /** Comma-separated `/metrics` URLs of the model servers. @default INFERENCE_URL's (and the fallback's) origin + /metrics */
  DEEPQUEUE_DASHBOARD_MODEL_METRICS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const urls = v
        .split(",")
        .map((u) => u.trim())
        .filter(Boolean);
      for (const url of urls) {
        if (!URL.canParse(url)) {
          ctx.addIssue({ code: "custom", message: `not a URL: ${url}` });
          return z.NEVER;
        }
      }
      return urls;
    }),
});
export type DashboardEnv = z.infer<typeof dashboardEnvSchema>;

/** @example const env = loadDashboardEnv(process.env); */
export function loadDashboardEnv(source: Record<string, string | undefined> = process.env): DashboardEnv {
  return loadEnv(dashboardEnvSchema, source);
}

/**
 * vLLM serves `/metrics` at the root of the server whose OpenAI API is at `/v1`.
 *
 * @example metricsUrlOf("http://vllm:8000/v1") // "http://vllm:8000/metrics"
 */
export function metricsUrlOf(inferenceUrl: string): string {
  return new URL("/metrics", inferenceUrl).toString();
}

/**
 * Dashboard options from its environment. Dev mode is DEEPQUEUE_DEV_MODE, or
 * both AWS endpoints on loopback (the `dev` stack's emulators, which hold no
 * one else's data): only then, and only on a loopback host, is it open.
 *
 * @example const dashboard = await startDashboard(dashboardOptionsFromEnv(loadDashboardEnv()));
 */
export function dashboardOptionsFromEnv(env: DashboardEnv): DashboardOptions {
  const local = (url: string | undefined) => url !== undefined && isLoopbackHost(new URL(url).hostname);
  const models = env.DEEPQUEUE_DASHBOARD_MODEL_METRICS ?? [
    ...new Set(
      [env.INFERENCE_URL, env.DEEPQUEUE_FALLBACK_INFERENCE_URL]
        .filter((u): u is string => Boolean(u))
        .map(metricsUrlOf),
    ),
  ];
  return {
    endpoints: { sqs: env.AWS_ENDPOINT_URL_SQS, dynamodb: env.AWS_ENDPOINT_URL_DYNAMODB },
    region: env.AWS_REGION,
    prefix: env.DEEPQUEUE_PREFIX,
    port: env.DEEPQUEUE_DASHBOARD_PORT,
    host: env.DEEPQUEUE_DASHBOARD_HOST,
    devMode:
      env.DEEPQUEUE_DEV_MODE || (local(env.AWS_ENDPOINT_URL_SQS) && local(env.AWS_ENDPOINT_URL_DYNAMODB)),
    ...(env.DEEPQUEUE_ADMIN_TOKEN ? { adminToken: env.DEEPQUEUE_ADMIN_TOKEN } : {}),
    modelMetricsUrls: models,
    pollMs: env.DEEPQUEUE_DASHBOARD_POLL_SECONDS * 1000,
    idlePollMs: env.DEEPQUEUE_DASHBOARD_IDLE_POLL_SECONDS * 1000,
  };
}
