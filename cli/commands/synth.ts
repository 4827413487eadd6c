import type { Command } from "commander";

// Placeholder until its issue lands: the command is listed but says so when run.
export function registerSynth(program: Command): void {
  program
    .command("synth")
    .description("the Kubernetes manifests into dist/")
    .allowUnknownOption()
    .action(() => {
      throw new Error("'synth' is not built yet");
    });
}
