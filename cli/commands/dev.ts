import type { Command } from "commander";
import { useLogDestination } from "../../functions/shared/logger.ts";
import { devBanner, startDev } from "../../local/dev.ts";
import { terminalLogDestination } from "../../local/pretty-log.ts";
import { print } from "../context.ts";
import { waitForSignal } from "../ready.ts";

export function registerDev(program: Command): void {
  program
    .command("dev")
    .description(
      "the whole pipeline on this machine: emulated SQS and DynamoDB, the model simulator (unless INFERENCE_URL is set), every function",
    )
    .addHelpText(
      "after",
      "\nPorts: ingest 8080, SQS 4566, DynamoDB 4567, simulator 8000. Data is kept under DEEPQUEUE_DATA_DIR (.deepqueue/).\nThe dev tenant's key is DEEPQUEUE_DEV_API_KEY, or one generated and kept in the data folder.",
    )
    .action(async () => {
      // One coloured line per log entry on a terminal; JSON lines when piped or in a container.
      useLogDestination(await terminalLogDestination());
      const stack = await startDev();
      print(devBanner(stack));
      await waitForSignal();
      print("\nstopping…");
      await stack.stop();
      print("stopped");
    });
}
