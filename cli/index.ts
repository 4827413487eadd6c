import { Command } from "commander";
import { COMMANDS } from "./commands/index.ts";
import { addHelpExamples } from "./help-examples.ts";

/**
 * The `deepqueue` command line (docs/api.md#cli). Each command lives in
 * `cli/commands/<name>.ts` and registers itself on the program.
 */
export function buildProgram(): Command {
  const program = new Command("deepqueue")
    .description("Event-driven inference pipeline for DeepSeek models on Kubernetes")
    .showHelpAfterError()
    .enablePositionalOptions();
  for (const register of COMMANDS) register(program);
  addHelpExamples(program);
  return program;
}

const isMain = process.argv[1] && /cli[\\/]index\.(ts|js)$/.test(process.argv[1]);
const isBin = process.argv[1] && /deepqueue(\.js)?$/.test(process.argv[1]);
if (isMain || isBin) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`deepqueue: ${message}\n`);
      process.exitCode = 1;
    });
}
