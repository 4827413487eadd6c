import { Command } from "commander";
import { COMMANDS } from "./commands/index.ts";
import { addHelpExamples } from "./help-examples.ts";

/**
 * The `deepqueue` command line (docs/api.md#cli). Each command lives in
 * `cli/commands/<name>.ts` and registers itself on the program; given the
 * arguments, only the command they name is loaded (`--help` loads them all).
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command("deepqueue")
    .description("Event-driven inference pipeline for DeepSeek models on Kubernetes")
    .showHelpAfterError()
    .enablePositionalOptions();
  const named = COMMANDS.find((c) => c.name === argv[2]);
  for (const command of named ? [named] : COMMANDS) (await command.load())(program);
  addHelpExamples(program);
  return program;
}

const isMain = process.argv[1] && /cli[\\/]index\.(ts|js)$/.test(process.argv[1]);
const isBin = process.argv[1] && /deepqueue(\.js)?$/.test(process.argv[1]);
if (isMain || isBin) {
  buildProgram(process.argv)
    .then((program) => program.parseAsync(process.argv))
    .catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`deepqueue: ${message}\n`);
      process.exitCode = 1;
    });
}
