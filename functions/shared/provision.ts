import type { SQSClient } from "@aws-sdk/client-sqs";
import { ensureQueueWithDlq } from "./bootstrap.ts";
import { InvalidRequestError } from "./errors.ts";
import { newApiKey, newWebhookSecret } from "./ids.ts";
import { resultQueueName, tenantNameProblem } from "./names.ts";
import type { Tenant, TenantStore } from "./stores/tenants.ts";

export interface ProvisionedTenant {
  tenant: string;
  /** Shown once; only its hash is stored. */
  api_key: string;
  /** Shown once here; `keys rotate-secret` issues a new one. */
  webhook_secret: string;
  result_queue_url: string;
  daily_requests: number | null;
  daily_tokens: number | null;
}

/**
 * Creates a tenant, its API key and webhook secret, and its result queue
 * (`<prefix>-results-<tenant>` + DLQ). The queue is made first, so a tenant
 * never exists without the queue its consumers read.
 *
 * @example await provisionTenant({ sqs, tenants, prefix: "deepqueue" }, { tenant: "acme", dailyRequests: 1000 });
 */
export async function provisionTenant(
  deps: { sqs: SQSClient; tenants: TenantStore; prefix: string },
  input: { tenant: string; apiKey?: string; dailyRequests?: number | null; dailyTokens?: number | null },
): Promise<ProvisionedTenant> {
  const problem = tenantNameProblem(input.tenant);
  if (problem) throw new InvalidRequestError(problem);
  const queue = await ensureQueueWithDlq(deps.sqs, resultQueueName(deps.prefix, input.tenant));
  const apiKey = input.apiKey ?? newApiKey();
  const webhookSecret = newWebhookSecret();
  const tenant: Tenant = await deps.tenants.create({
    tenant: input.tenant,
    apiKey,
    webhookSecret,
    ...(input.dailyRequests !== undefined ? { dailyRequests: input.dailyRequests } : {}),
    ...(input.dailyTokens !== undefined ? { dailyTokens: input.dailyTokens } : {}),
  });
  return {
    tenant: tenant.tenant,
    api_key: apiKey,
    webhook_secret: webhookSecret,
    result_queue_url: queue.url,
    daily_requests: tenant.daily_requests,
    daily_tokens: tenant.daily_tokens,
  };
}
