import type { Command } from "commander";
import { baseEnvSchema, loadEnv } from "../../functions/shared/env.ts";
import { DEV_PORTS, startEmulators } from "../../local/emulators.ts";
import { print } from "../context.ts";
import { waitForSignal } from "./dev.ts";

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`port must be 0-65535, got "${value}"`);
  return n;
}

export function registerEmulators(program: Command): void {
  program
    .command("emulators")
    .description("the embedded SQS (fauxqs) and DynamoDB (dynalite) alone")
    .option("--sqs-port <port>", "SQS port", port, DEV_PORTS.sqs)
    .option("--dynamodb-port <port>", "DynamoDB port", port, DEV_PORTS.dynamo)
    .option("--in-memory", "keep no data on disk (default: under DEEPQUEUE_DATA_DIR)")
    .action(async (options: { sqsPort: number; dynamodbPort: number; inMemory?: boolean }) => {
      const env = loadEnv(baseEnvSchema);
      const emulators = await startEmulators({
        sqsPort: options.sqsPort,
        dynamoPort: options.dynamodbPort,
        ...(options.inMemory ? {} : { dataDir: env.DEEPQUEUE_DATA_DIR }),
      });
      print(`SQS       ${emulators.sqsEndpoint}`);
      print(
        `DynamoDB  ${emulators.dynamoEndpoint}${options.inMemory ? " (in memory)" : ` (data in ${env.DEEPQUEUE_DATA_DIR})`}`,
      );
      print("");
      print(`export AWS_ENDPOINT_URL_SQS=${emulators.sqsEndpoint}`);
      print(`export AWS_ENDPOINT_URL_DYNAMODB=${emulators.dynamoEndpoint}`);
      print("then: npx deepqueue bootstrap");
      await waitForSignal();
      await emulators.stop();
    });
}
