import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { DeepqueueClient } from "../../client/client.ts";
import type { SubmitBodyInput } from "../../events/index.ts";
import { baseEnvSchema, loadEnv } from "../../functions/shared/env.ts";
import { DeepqueueError } from "../../functions/shared/errors.ts";
import { print } from "../context.ts";
import { numberIn, UsageError } from "../options.ts";
import { abortOnSignals } from "../ready.ts";

/** `submit`'s own variables, beside the common ones (docs/api.md#configuration). */
export const submitEnvSchema = baseEnvSchema.extend({
  /** The API key `submit` sends (else DEEPQUEUE_DEV_API_KEY, else the key `dev` keeps in its data dir). */
  DEEPQUEUE_API_KEY: z.string().min(1).optional(),
  /** The ingest URL. @default http://127.0.0.1:$PORT */
  DEEPQUEUE_URL: z.url().optional(),
});

/** Where `deepqueue dev` keeps the dev tenant's key (local/dev.ts), so `submit` works with no setup. */
const DEV_KEY_FILE = "dev-api-key";

interface SubmitOptions {
  wait?: boolean;
  conversation?: string;
  url?: string;
  apiKey?: string;
  maxTokens?: number;
  temperature?: number;
  callbackUrl?: string;
  idempotencyKey?: string;
  timeout: number;
  json?: boolean;
}

export function apiKeyFrom(
  options: Pick<SubmitOptions, "apiKey">,
  env: z.infer<typeof submitEnvSchema>,
): string {
  const key = options.apiKey ?? env.DEEPQUEUE_API_KEY ?? env.DEEPQUEUE_DEV_API_KEY;
  if (key) return key;
  const file = join(env.DEEPQUEUE_DATA_DIR, DEV_KEY_FILE);
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  throw new UsageError(
    "no API key: pass --api-key, set DEEPQUEUE_API_KEY, or run `npm start` (dev keeps its key in .deepqueue/)",
  );
}

export function registerSubmit(program: Command): void {
  program
    .command("submit")
    .description("produce one request through the HTTP API; --wait prints the answer")
    .argument("<prompt>", "the prompt")
    .option("--wait", "poll until the request ends and print the answer")
    .option("--conversation <id>", "continue (or start) a stored conversation")
    .option("--url <url>", "ingest URL (default $DEEPQUEUE_URL or http://127.0.0.1:$PORT)")
    .option("--api-key <key>", "API key (default $DEEPQUEUE_API_KEY, $DEEPQUEUE_DEV_API_KEY or dev's)")
    .option("--max-tokens <n>", "1..8192", numberIn("--max-tokens", { integer: true, min: 1, max: 8192 }))
    .option("--temperature <t>", "0..2", numberIn("--temperature", { max: 2 }))
    .option("--callback-url <url>", "also deliver the result here, signed")
    .option("--idempotency-key <key>", "resubmitting with the same key returns the first request")
    .option(
      "--timeout <s>",
      "with --wait, give up after this many seconds",
      numberIn("--timeout", { integer: true, min: 1, max: 86_400 }),
      900,
    )
    .option("--json", "print the API's JSON")
    .action(submit);
}

/** Submits the prompt; with --wait, waits for the answer and prints it. */
async function submit(prompt: string, options: SubmitOptions): Promise<void> {
  const env = loadEnv(submitEnvSchema);
  const client = new DeepqueueClient({
    baseUrl: options.url ?? env.DEEPQUEUE_URL ?? `http://127.0.0.1:${env.PORT}`,
    apiKey: apiKeyFrom(options, env),
  });
  // Unset options stay undefined, which the JSON body leaves out.
  const body: SubmitBodyInput = {
    prompt,
    conversation_id: options.conversation,
    max_tokens: options.maxTokens,
    temperature: options.temperature,
    callback_url: options.callbackUrl,
  };
  const accepted = await client.submit(
    body,
    options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {},
  );
  if (!options.wait) {
    print(
      options.json ? JSON.stringify(accepted) : `${accepted.id}  ${accepted.status}  ${accepted.status_url}`,
    );
    return;
  }
  await waitAndPrint(client, accepted.id, options);
}

/** Polls the request until it ends (Ctrl-C stops waiting, not the request) and prints the answer. */
async function waitAndPrint(client: DeepqueueClient, id: string, options: SubmitOptions): Promise<void> {
  const record = await abortOnSignals(
    ["SIGINT"],
    (signal) => client.waitFor(id, { timeoutMs: options.timeout * 1000, signal }),
    () => new DeepqueueError(`stopped waiting; the request ${id} goes on`),
  );
  if (options.json) print(JSON.stringify(record));
  else if (record.result) print(record.result.text);
  if (record.status === "failed") {
    if (!options.json) process.stderr.write(`deepqueue: ${record.error?.code}: ${record.error?.message}\n`);
    process.exitCode = 1;
  }
}
