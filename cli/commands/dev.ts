import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerDev(program: Command): void {
  program
    .command("dev")
    .description("the whole pipeline on this machine with embedded defaults")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'dev' is not built yet");
    });
}
