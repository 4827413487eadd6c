import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { commandPath, HELP_EXAMPLES } from "./help-examples.ts";
import { buildProgram } from "./index.ts";

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

/** What `deepqueue <path> --help` prints. */
function helpOf(command: Command): string {
  let out = "";
  command.configureOutput({
    writeOut: (text) => {
      out += text;
    },
  });
  command.outputHelp();
  return out;
}

describe("every command's --help ends with an example", async () => {
  const program = await buildProgram();
  const commands = allCommands(program);

  it.each(commands.map((c) => [commandPath(c) || "(deepqueue)", c] as const))("%s", (_path, command) => {
    const path = commandPath(command);
    const lines = HELP_EXAMPLES[path];
    expect(lines, `no example for "deepqueue ${path}" in cli/help-examples.ts`).toBeDefined();
    const help = helpOf(command).trimEnd();
    expect(help.endsWith(lines!.map((l) => `  $ ${l}`).join("\n")), help).toBe(true);
    expect(help).toMatch(/\nExamples?:\n/);

    // The example runs this command (or one under it) with flags that command has.
    const invocation = lines!.find((l) => l.includes("deepqueue ")) ?? "";
    let target: Command = program;
    for (const word of invocation.split("deepqueue ")[1]?.split(" ") ?? []) {
      const sub = target.commands.find((c) => c.name() === word);
      if (!sub) break;
      target = sub;
    }
    expect(`${commandPath(target)} `.startsWith(path ? `${path} ` : ""), invocation).toBe(true);
    const known = new Set(target.options.flatMap((o) => [o.long, o.short]).filter(Boolean));
    for (const flag of invocation.match(/(?<= )--[a-z-]+/g) ?? []) {
      expect(known, `${flag} in "${invocation}"`).toContain(flag);
    }
  });

  it("has no example for a command that does not exist", () => {
    const paths = new Set(commands.map(commandPath));
    expect(Object.keys(HELP_EXAMPLES).filter((p) => !paths.has(p))).toEqual([]);
  });
});
