import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerSubmit(program: Command): void {
  program
    .command("submit")
    .description("produce one request from the shell")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'submit' is not built yet");
    });
}
