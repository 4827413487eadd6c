import { readFileSync } from "node:fs";
import { basename } from "node:path";
import type { Command } from "commander";
import { DeepqueueClient } from "../../client/client.ts";
import { BATCH_ENDPOINTS, type BatchEndpoint, type BatchObject } from "../../events/index.ts";
import { loadEnv } from "../../functions/shared/env.ts";
import { DeepqueueError } from "../../functions/shared/errors.ts";
import { print } from "../context.ts";
import { UsageError } from "../options.ts";
import { apiKeyFrom, submitEnvSchema } from "./submit.ts";

interface ClientOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
}

/** The client `submit` would build: --url / DEEPQUEUE_URL, --api-key / DEEPQUEUE_API_KEY / dev's key. */
function client(options: ClientOptions): DeepqueueClient {
  const env = loadEnv(submitEnvSchema);
  return new DeepqueueClient({
    baseUrl: options.url ?? env.DEEPQUEUE_URL ?? `http://127.0.0.1:${env.PORT}`,
    apiKey: apiKeyFrom(options, env),
  });
}

/** One line per batch: id, status, counts, files. */
function describe(batch: BatchObject): string {
  const { total, completed, failed } = batch.request_counts;
  const files = [
    batch.output_file_id ? `output=${batch.output_file_id}` : "",
    batch.error_file_id ? `errors=${batch.error_file_id}` : "",
  ].filter(Boolean);
  const problems = batch.errors?.data.map((e) => `\n  line ${e.line ?? "-"}: ${e.code}: ${e.message}`) ?? [];
  return `${batch.id}  ${batch.status}  ${completed}/${total} completed, ${failed} failed  ${files.join(" ")}${problems.join("")}`;
}

function show(batch: BatchObject, options: ClientOptions): void {
  print(options.json ? JSON.stringify(batch) : describe(batch));
}

function endpoint(value: string): BatchEndpoint {
  if (!(BATCH_ENDPOINTS as readonly string[]).includes(value)) {
    throw new UsageError(`--endpoint must be one of ${BATCH_ENDPOINTS.join(", ")}, got "${value}"`);
  }
  return value as BatchEndpoint;
}

function withClientOptions(command: Command): Command {
  return command
    .option("--url <url>", "ingest URL (default $DEEPQUEUE_URL or http://127.0.0.1:$PORT)")
    .option("--api-key <key>", "API key (default $DEEPQUEUE_API_KEY, $DEEPQUEUE_DEV_API_KEY or dev's)")
    .option("--json", "print the API's JSON");
}

async function create(file: string, options: ClientOptions & { endpoint: BatchEndpoint; wait?: boolean }) {
  const dq = client(options);
  const uploaded = await dq.files.create(readFileSync(file), { filename: basename(file) });
  let batch = await dq.batches.create({ input_file_id: uploaded.id, endpoint: options.endpoint });
  if (options.wait) {
    const abort = new AbortController();
    const stop = () => abort.abort(new DeepqueueError(`stopped waiting; the batch ${batch.id} goes on`));
    process.once("SIGINT", stop);
    try {
      batch = await dq.batches.waitFor(batch.id, { signal: abort.signal });
    } finally {
      process.off("SIGINT", stop);
    }
    if (batch.status !== "completed") process.exitCode = 1;
  }
  show(batch, options);
}

/**
 * `deepqueue batch`: OpenAI-style batches (docs/openai.md) from the shell, through the same
 * HTTP API and key as `submit`.
 */
export function registerBatch(program: Command): void {
  const batch = program
    .command("batch")
    .description(
      "run a JSONL file of requests as one batch (OpenAI's Batch API); list, get, cancel, results",
    );
  withClientOptions(
    batch
      .command("create")
      .description("upload a JSONL file and create a batch from it; --wait polls until it ends")
      .argument("<file>", "the input file: one {custom_id, method, url, body} per line")
      .option("--endpoint <path>", `${BATCH_ENDPOINTS.join(" or ")}`, endpoint, "/v1/chat/completions")
      .option("--wait", "poll until the batch ends and print it"),
  ).action(create);
  withClientOptions(batch.command("list").description("the tenant's batches, newest first")).action(
    async (options: ClientOptions) => {
      const page = await client(options).batches.list({ limit: 100 });
      if (options.json) print(JSON.stringify(page));
      else for (const b of page.data) print(describe(b));
    },
  );
  withClientOptions(batch.command("get").description("one batch").argument("<id>", "the batch id")).action(
    async (id: string, options: ClientOptions) => show(await client(options).batches.get(id), options),
  );
  withClientOptions(
    batch.command("cancel").description("stop sending a batch's lines; it ends cancelled").argument("<id>"),
  ).action(async (id: string, options: ClientOptions) =>
    show(await client(options).batches.cancel(id), options),
  );
  withClientOptions(
    batch
      .command("results")
      .description("print a batch's output file (JSONL); --errors: its error file")
      .argument("<id>", "the batch id")
      .option("--errors", "the error file instead"),
  ).action(async (id: string, options: ClientOptions & { errors?: boolean }) => {
    const lines = await client(options).batches.results(id, { errors: options.errors ?? false });
    for (const line of lines) print(JSON.stringify(line));
  });
}
