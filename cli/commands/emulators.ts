import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerEmulators(program: Command): void {
  program
    .command("emulators")
    .description("the embedded SQS and DynamoDB alone")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'emulators' is not built yet");
    });
}
