import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerRedrive(program: Command): void {
  program
    .command("redrive")
    .description("move a dead-letter queue's messages back, rate-limited, safe to repeat")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'redrive' is not built yet");
    });
}
