import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerSim(program: Command): void {
  program
    .command("sim")
    .description("the OpenAI-compatible model-server simulator alone")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'sim' is not built yet");
    });
}
