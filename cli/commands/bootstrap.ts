import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerBootstrap(program: Command): void {
  program
    .command("bootstrap")
    .description("create the queues and tables at the configured endpoints (idempotent)")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'bootstrap' is not built yet");
    });
}
