import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerKeys(program: Command): void {
  program
    .command("keys")
    .description("manage tenants and their API keys")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'keys' is not built yet");
    });
}
