import type { SQSClient } from "@aws-sdk/client-sqs";
import type { Command } from "commander";
import { type ConsumedEvent, ResultConsumer } from "../../client/consumer.ts";
import { resultQueueName } from "../../functions/shared/names.ts";
import { print, withCliContext } from "../context.ts";
import { wholeNumber } from "../options.ts";
import { abortOnSignals } from "../ready.ts";

export interface ConsumeResultsOptions {
  sqs: SQSClient;
  prefix: string;
  tenant: string;
  follow: boolean;
  json: boolean;
  /** Stop after this many events. */
  max?: number;
  signal?: AbortSignal;
  /** Long-poll wait per receive. @default 20 with follow, 1 without */
  waitTimeSeconds?: number;
}

/**
 * Prints a tenant's result events and deletes each once printed (at least
 * once: an event printed just before a crash may print again). Returns how
 * many it printed.
 *
 * @example await consumeResults({ sqs, prefix: "deepqueue", tenant: "dev", follow: false, json: true });
 */
export async function consumeResults(options: ConsumeResultsOptions): Promise<number> {
  const consumer = new ResultConsumer({
    sqs: options.sqs,
    prefix: options.prefix,
    tenant: options.tenant,
    follow: options.follow,
    ...(options.waitTimeSeconds !== undefined ? { waitTimeSeconds: options.waitTimeSeconds } : {}),
    onError: (error) => process.stderr.write(`deepqueue results: ${(error as Error).message ?? error}\n`),
  });
  if (options.signal?.aborted) return 0;
  options.signal?.addEventListener("abort", () => consumer.stop(), { once: true });
  let printed = 0;
  await consumer.run((event) => {
    print(options.json ? JSON.stringify(event) : pretty(event));
    printed += 1;
    if (options.max !== undefined && printed >= options.max) consumer.stop();
  });
  return printed;
}

/** A human-readable event: a status line, then the answer (or the error) indented. */
export function pretty(event: ConsumedEvent): string {
  const record = event.data;
  const head = [
    record.status === "completed" ? "✔ completed" : "✘ failed",
    record.id,
    record.model,
    record.result ? `source=${record.result.source}` : "",
    record.result
      ? `tokens=${record.result.usage.prompt_tokens}+${record.result.usage.completion_tokens}`
      : "",
    record.conversation_id ? `conversation=${record.conversation_id}` : "",
    record.completed_at ?? event.time,
  ]
    .filter(Boolean)
    .join("  ");
  const body = record.error
    ? `${record.error.code}: ${record.error.message}`
    : event.dataref
      ? `(answer too large for a queue message: GET ${event.dataref})`
      : (record.result?.text ?? "");
  const lines = [head, ...body.split("\n").map((line) => `    ${line}`)];
  if (record.metadata) lines.push(`    metadata: ${JSON.stringify(record.metadata)}`);
  return lines.join("\n");
}

export function registerResults(program: Command): void {
  program
    .command("results")
    .description("consume a result queue from the shell: print each event, then delete it")
    .option("--follow", "keep waiting for new results until Ctrl-C")
    .option("--tenant <name>", "whose result queue (<prefix>-results-<tenant>)", "dev")
    .option("--json", "print one JSON event per line")
    .option("--max <n>", "stop after n events", wholeNumber("--max"))
    .action(async (options: { follow?: boolean; tenant: string; json?: boolean; max?: number }) => {
      await withCliContext((ctx) =>
        abortOnSignals(["SIGINT", "SIGTERM"], async (signal) => {
          if (options.follow && !options.json) {
            process.stderr.write(
              `following ${resultQueueName(ctx.env.DEEPQUEUE_PREFIX, options.tenant)} (Ctrl-C stops)\n`,
            );
          }
          const printed = await consumeResults({
            sqs: ctx.sqs,
            prefix: ctx.env.DEEPQUEUE_PREFIX,
            tenant: options.tenant,
            follow: Boolean(options.follow),
            json: Boolean(options.json),
            signal,
            ...(options.max !== undefined ? { max: options.max } : {}),
          });
          if (!options.follow && printed === 0 && !options.json) {
            process.stderr.write(`no results waiting for tenant ${options.tenant}\n`);
          }
        }),
      );
    });
}
