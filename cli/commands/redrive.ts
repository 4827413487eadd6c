import type { Command } from "commander";
import { REDRIVE_DEFAULTS, redrive } from "../../functions/shared/redrive.ts";
import { print, withCliContext } from "../context.ts";
import { abortOnSignals } from "../ready.ts";

export {
  REDRIVE_DEFAULTS,
  type RedriveReport,
  redrive,
  redriveSource,
} from "../../functions/shared/redrive.ts";

import { positiveNumber, wholeNumber } from "../options.ts";

export function registerRedrive(program: Command): void {
  program
    .command("redrive")
    .description("move a dead-letter queue's messages back, rate-limited, safe to repeat")
    .argument(
      "<queue>",
      "requests, inference, inference-batch, delivery, results-<tenant> (or its -dlq, or a full name)",
    )
    .option("--rate <n>", `messages per second (default ${REDRIVE_DEFAULTS.rate})`, positiveNumber("--rate"))
    .option("--max <n>", "move at most n messages", wholeNumber("--max"))
    .option("--json", "print the report as JSON")
    .action(async (queue: string, options: { rate?: number; max?: number; json?: boolean }) => {
      const report = await withCliContext((ctx) =>
        abortOnSignals(["SIGINT"], (signal) =>
          redrive({
            sqs: ctx.sqs,
            prefix: ctx.env.DEEPQUEUE_PREFIX,
            queue,
            signal,
            ...(options.rate !== undefined ? { rate: options.rate } : {}),
            ...(options.max !== undefined ? { max: options.max } : {}),
          }),
        ),
      );
      print(
        options.json
          ? JSON.stringify(report)
          : `moved ${report.moved} message(s) from ${report.dlq} back to ${report.source} (${report.method})`,
      );
    });
}
