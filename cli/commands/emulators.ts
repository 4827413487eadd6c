import type { Command } from "commander";
import { baseEnvSchema, loadEnv } from "../../functions/shared/env.ts";
import { DEV_PORTS, startEmulators } from "../../local/emulators.ts";
import { port, UsageError } from "../options.ts";
import { print } from "../output.ts";
import { announceReady, waitForSignal } from "../ready.ts";

type Only = "sqs" | "dynamodb";

function only(value: string): Only {
  if (value !== "sqs" && value !== "dynamodb")
    throw new UsageError(`--only takes sqs or dynamodb, got "${value}"`);
  return value;
}

export function registerEmulators(program: Command): void {
  program
    .command("emulators")
    .description("the embedded SQS (fauxqs) and DynamoDB (dynalite) alone")
    .option("--sqs-port <port>", "SQS port", port(), DEV_PORTS.sqs)
    .option("--dynamodb-port <port>", "DynamoDB port", port(), DEV_PORTS.dynamo)
    .option("--in-memory", "keep no data on disk (default: under DEEPQUEUE_DATA_DIR)")
    .option("--only <emulator>", "start only one of them: sqs or dynamodb", only)
    .action(async (options: { sqsPort: number; dynamodbPort: number; inMemory?: boolean; only?: Only }) => {
      const env = loadEnv(baseEnvSchema);
      const emulators = await startEmulators({
        sqsPort: options.sqsPort,
        dynamoPort: options.dynamodbPort,
        ...(options.inMemory ? {} : { dataDir: env.DEEPQUEUE_DATA_DIR }),
        ...(options.only ? { only: options.only } : {}),
      });
      const quiet = announceReady({
        sqsEndpoint: emulators.sqsEndpoint,
        dynamoEndpoint: emulators.dynamoEndpoint,
      });
      if (!quiet) {
        const where = options.inMemory ? " (in memory)" : ` (data in ${env.DEEPQUEUE_DATA_DIR})`;
        if (emulators.sqsEndpoint) print(`SQS       ${emulators.sqsEndpoint}${where}`);
        if (emulators.dynamoEndpoint) print(`DynamoDB  ${emulators.dynamoEndpoint}${where}`);
        print("");
        if (emulators.sqsEndpoint) print(`export AWS_ENDPOINT_URL_SQS=${emulators.sqsEndpoint}`);
        if (emulators.dynamoEndpoint) print(`export AWS_ENDPOINT_URL_DYNAMODB=${emulators.dynamoEndpoint}`);
        print("then: npx deepqueue bootstrap");
      }
      await waitForSignal();
      await emulators.stop();
      // Forked by dev, the IPC channel would keep the process alive.
      process.exit(0);
    });
}
