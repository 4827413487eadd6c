import type { Command } from "commander";
import { newWebhookSecret } from "../../functions/shared/ids.ts";
import { provisionTenant } from "../../functions/shared/provision.ts";
import { activeSecrets, SECRET_ROTATION_GRACE_SECONDS } from "../../functions/shared/stores/tenants.ts";
import { cliContext, print } from "../context.ts";

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1, got "${value}"`);
    return n;
  };
}

export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("manage tenants: API keys, quotas, webhook secrets");

  keys
    .command("create")
    .description("create a tenant (and its result queue); prints its API key and webhook secret once")
    .requiredOption("--tenant <name>", "tenant name: 1-32 of a-z, 0-9, '-' (becomes part of a queue name)")
    .option("--daily-requests <n>", "requests per UTC day (default 500)", positiveInt("--daily-requests"))
    .option(
      "--daily-tokens <n>",
      "prompt + completion tokens per UTC day (default unlimited)",
      positiveInt("--daily-tokens"),
    )
    .option("--json", "print the result as JSON")
    .action(
      async (options: { tenant: string; dailyRequests?: number; dailyTokens?: number; json?: boolean }) => {
        const ctx = cliContext();
        try {
          const made = await provisionTenant(
            { sqs: ctx.sqs, tenants: ctx.tenants, prefix: ctx.env.DEEPQUEUE_PREFIX },
            {
              tenant: options.tenant,
              ...(options.dailyRequests ? { dailyRequests: options.dailyRequests } : {}),
              ...(options.dailyTokens ? { dailyTokens: options.dailyTokens } : {}),
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
        } finally {
          ctx.close();
        }
      },
    );

  keys
    .command("list")
    .description("list tenants (never their keys)")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const ctx = cliContext();
      try {
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
      } finally {
        ctx.close();
      }
    });

  keys
    .command("revoke")
    .description("revoke a tenant's API key (its data and queue stay)")
    .requiredOption("--tenant <name>", "tenant name")
    .action(async (options: { tenant: string }) => {
      const ctx = cliContext();
      try {
        await ctx.tenants.revoke(options.tenant);
        print(`revoked the API key of ${options.tenant}`);
      } finally {
        ctx.close();
      }
    });

  keys
    .command("rotate-secret")
    .description("issue a new webhook secret; the old one keeps signing for the grace period")
    .requiredOption("--tenant <name>", "tenant name")
    .option(
      "--grace-seconds <n>",
      `how long both secrets sign (default ${SECRET_ROTATION_GRACE_SECONDS})`,
      positiveInt("--grace-seconds"),
    )
    .option("--json", "print JSON")
    .action(async (options: { tenant: string; graceSeconds?: number; json?: boolean }) => {
      const ctx = cliContext();
      try {
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
      } finally {
        ctx.close();
      }
    });
}
