import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("run one function, as its container runs it")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'serve' is not built yet");
    });
}
