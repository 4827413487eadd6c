import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("the benchmark suite, with progress and a report")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'bench' is not built yet");
    });
}
