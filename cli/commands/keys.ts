import type { Command } from "commander";
import { DEGRADATION_LEVELS } from "../../events/index.ts";
import { newWebhookSecret } from "../../functions/shared/ids.ts";
import { provisionTenant } from "../../functions/shared/provision.ts";
import {
  activeSecrets,
  type DegradationSettings,
  SECRET_ROTATION_GRACE_SECONDS,
  type TenantChanges,
} from "../../functions/shared/stores/tenants.ts";
import { print, withCliContext } from "../context.ts";
import { UsageError, wholeNumber } from "../options.ts";

/** A quota: a whole number or "unlimited" (commander cannot carry null, so "unlimited" stays a string until used). */
function quota(name: string) {
  return (value: string): number | "unlimited" => {
    if (value === "unlimited") return "unlimited";
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`${name} must be a whole number ≥ 1 or 'unlimited', got "${value}"`);
    }
    return n;
  };
}

function quotaValue(value: number | "unlimited"): number | null {
  return value === "unlimited" ? null : value;
}

function onOff(name: string) {
  return (value: string): boolean => {
    if (value === "on" || value === "true") return true;
    if (value === "off" || value === "false") return false;
    throw new UsageError(`${name} must be on or off, got "${value}"`);
  };
}

const LEVELS = DEGRADATION_LEVELS;

function degradationLevels(value: string): DegradationSettings {
  const wanted = value === "none" ? [] : value.split(",").map((v) => v.trim());
  const unknown = wanted.filter((v) => !(LEVELS as readonly string[]).includes(v));
  if (unknown.length)
    throw new UsageError(
      `--degradation: unknown level ${unknown.join(", ")}; allowed: ${LEVELS.join(", ")} or none`,
    );
  return {
    cache: wanted.includes("cache"),
    fallback: wanted.includes("fallback"),
    static: wanted.includes("static"),
  };
}

/** `deepqueue keys <create|list|revoke|seal-secrets|update|rotate-secret>`. */
export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("manage tenants: API keys, quotas, webhook secrets");
  registerCreate(keys);
  registerList(keys);
  registerRevoke(keys);
  registerSealSecrets(keys);
  registerUpdate(keys);
  registerRotateSecret(keys);
}

function registerCreate(keys: Command): void {
  keys
    .command("create")
    .description("create a tenant (and its result queue); prints its API key and webhook secret once")
    .requiredOption("--tenant <name>", "tenant name: 1-32 of a-z, 0-9, '-' (becomes part of a queue name)")
    .option(
      "--daily-requests <n>",
      "requests per UTC day, or 'unlimited' (default 500)",
      quota("--daily-requests"),
    )
    .option(
      "--daily-tokens <n>",
      "prompt + completion tokens per UTC day, or 'unlimited' (default unlimited)",
      quota("--daily-tokens"),
    )
    .option("--json", "print the result as JSON")
    .action(
      async (options: {
        tenant: string;
        dailyRequests?: number | "unlimited";
        dailyTokens?: number | "unlimited";
        json?: boolean;
      }) => {
        await withCliContext(async (ctx) => {
          const made = await provisionTenant(
            { sqs: ctx.sqs, tenants: ctx.tenants, prefix: ctx.env.DEEPQUEUE_PREFIX },
            {
              tenant: options.tenant,
              ...(options.dailyRequests !== undefined
                ? { dailyRequests: quotaValue(options.dailyRequests) }
                : {}),
              ...(options.dailyTokens !== undefined ? { dailyTokens: quotaValue(options.dailyTokens) } : {}),
            },
          );
          if (options.json) {
            print(JSON.stringify(made, null, 2));
            return;
          }
          print(`tenant            ${made.tenant}`);
          print(`api_key           ${made.api_key}`);
          print(`webhook_secret    ${made.webhook_secret}`);
          print(`result_queue_url  ${made.result_queue_url}`);
          print(
            `daily quota       ${made.daily_requests ?? "unlimited"} requests, ${made.daily_tokens ?? "unlimited"} tokens`,
          );
          print();
          print("The key and secret are shown only now; deepqueue stores a hash of the key.");
        });
      },
    );
}

function registerList(keys: Command): void {
  keys
    .command("list")
    .description("list tenants (never their keys)")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      await withCliContext(async (ctx) => {
        const tenants = await ctx.tenants.list();
        const rows = tenants.map((t) => ({
          tenant: t.tenant,
          status: t.revoked_at ? "revoked" : "active",
          key_hint: t.key_hint ? `${t.key_hint}…` : "",
          daily_requests: t.daily_requests,
          daily_tokens: t.daily_tokens,
          webhook_secrets: activeSecrets(t).length,
          created_at: t.created_at,
        }));
        if (options.json) {
          print(JSON.stringify(rows, null, 2));
          return;
        }
        if (rows.length === 0) print("no tenants yet: deepqueue keys create --tenant NAME");
        for (const r of rows) {
          print(
            `${r.tenant.padEnd(24)} ${r.status.padEnd(8)} ${r.key_hint.padEnd(12)} ${String(r.daily_requests ?? "unlimited").padStart(9)} req/day  ${String(r.daily_tokens ?? "unlimited").padStart(9)} tok/day`,
          );
        }
      });
    });
}

function registerRevoke(keys: Command): void {
  keys
    .command("revoke")
    .description("revoke a tenant's API key (its data and queue stay)")
    .requiredOption("--tenant <name>", "tenant name")
    .action(async (options: { tenant: string }) => {
      await withCliContext(async (ctx) => {
        await ctx.tenants.revoke(options.tenant);
        print(`revoked the API key of ${options.tenant}`);
      });
    });
}

function registerSealSecrets(keys: Command): void {
  keys
    .command("seal-secrets")
    .description(
      "encrypt every webhook secret still stored in plain text, with DEEPQUEUE_SECRETS_KMS_KEY_ID or DEEPQUEUE_SECRETS_KEY (safe to repeat)",
    )
    .option(
      "--reseal",
      "also re-encrypt sealed secrets with the current key (after a key rotation or a move to KMS)",
    )
    .action(async (options: { reseal?: boolean }) => {
      await withCliContext(async (ctx) => {
        if (!ctx.env.DEEPQUEUE_SECRETS_KEY && !ctx.env.DEEPQUEUE_SECRETS_KMS_KEY_ID) {
          throw new UsageError(
            "neither DEEPQUEUE_SECRETS_KEY nor DEEPQUEUE_SECRETS_KMS_KEY_ID is set: there is no key to seal the secrets with",
          );
        }
        const sealed = await ctx.tenants.migrateSecrets({ reseal: options.reseal ?? false });
        print(`sealed the webhook secrets of ${sealed} tenant(s)`);
      });
    });
}

interface UpdateOptions {
  tenant: string;
  dailyRequests?: number | "unlimited";
  dailyTokens?: number | "unlimited";
  requireSignatures?: boolean;
  requireJwtAndKey?: boolean;
  cacheOptIn?: boolean;
  degradation?: DegradationSettings;
  json?: boolean;
}

/** The tenant fields `keys update` was asked to change, and only those. */
function tenantChanges(options: UpdateOptions): TenantChanges {
  return {
    ...(options.dailyRequests !== undefined ? { daily_requests: quotaValue(options.dailyRequests) } : {}),
    ...(options.dailyTokens !== undefined ? { daily_tokens: quotaValue(options.dailyTokens) } : {}),
    ...(options.requireSignatures !== undefined ? { require_signatures: options.requireSignatures } : {}),
    ...(options.requireJwtAndKey !== undefined ? { require_jwt_and_api_key: options.requireJwtAndKey } : {}),
    ...(options.cacheOptIn !== undefined ? { cache_opt_in: options.cacheOptIn } : {}),
    ...(options.degradation ? { degradation: options.degradation } : {}),
  };
}

function registerUpdate(keys: Command): void {
  keys
    .command("update")
    .description("change a tenant's quotas and switches")
    .requiredOption("--tenant <name>", "tenant name")
    .option("--daily-requests <n>", "requests per UTC day, or 'unlimited'", quota("--daily-requests"))
    .option("--daily-tokens <n>", "tokens per UTC day, or 'unlimited'", quota("--daily-tokens"))
    .option(
      "--require-signatures <on|off>",
      "refuse requests not signed with Standard Webhooks headers",
      onOff("--require-signatures"),
    )
    .option(
      "--require-jwt-and-key <on|off>",
      "two factors: every request needs both a JWT (Authorization) and the tenant's API key (X-API-Key)",
      onOff("--require-jwt-and-key"),
    )
    .option(
      "--cache-opt-in <on|off>",
      "answer from the cache even when temperature > 0",
      onOff("--cache-opt-in"),
    )
    .option(
      "--degradation <levels>",
      "degradation levels allowed when the model fails, comma-separated from cache,fallback,static, or 'none'",
      degradationLevels,
    )
    .option("--json", "print the tenant as JSON (never its key or secrets)")
    .action(async (options: UpdateOptions) => {
      await withCliContext(async (ctx) => {
        const tenant = await ctx.tenants.update(options.tenant, tenantChanges(options));
        const view = {
          tenant: tenant.tenant,
          daily_requests: tenant.daily_requests,
          daily_tokens: tenant.daily_tokens,
          require_signatures: tenant.require_signatures,
          require_jwt_and_api_key: tenant.require_jwt_and_api_key ?? false,
          cache_opt_in: tenant.cache_opt_in,
          degradation: tenant.degradation,
        };
        if (options.json) print(JSON.stringify(view, null, 2));
        else
          for (const [k, v] of Object.entries(view))
            print(
              `${k.padEnd(20)} ${typeof v === "object" && v ? JSON.stringify(v) : String(v ?? "unlimited")}`,
            );
      });
    });
}

function registerRotateSecret(keys: Command): void {
  keys
    .command("rotate-secret")
    .description("issue a new webhook secret; the old one keeps signing for the grace period")
    .requiredOption("--tenant <name>", "tenant name")
    .option(
      "--grace-seconds <n>",
      `how long both secrets sign (default ${SECRET_ROTATION_GRACE_SECONDS})`,
      wholeNumber("--grace-seconds"),
    )
    .option("--json", "print JSON")
    .action(async (options: { tenant: string; graceSeconds?: number; json?: boolean }) => {
      await withCliContext(async (ctx) => {
        const secret = newWebhookSecret();
        const tenant = await ctx.tenants.rotateSecret(options.tenant, secret, options.graceSeconds);
        const previous = tenant.webhook_secrets[1];
        if (options.json) {
          print(
            JSON.stringify({
              tenant: tenant.tenant,
              webhook_secret: secret,
              previous_expires_at: previous?.expires_at,
            }),
          );
          return;
        }
        print(`webhook_secret    ${secret}`);
        if (previous?.expires_at) print(`the previous secret keeps signing until ${previous.expires_at}`);
      });
    });
}
