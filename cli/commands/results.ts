import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerResults(program: Command): void {
  program
    .command("results")
    .description("consume a result queue from the shell")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'results' is not built yet");
    });
}
