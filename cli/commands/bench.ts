import type { Command } from "commander";
import { print } from "../context.ts";

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("the benchmark suite, with progress and a report")
    .option("--quick", "the CI-sized run: a faster simulator and short runs (under 2 minutes)")
    .option("--out <dir>", "where the JSON, Markdown and SVG results go (default: bench/results)")
    .option("--note <text>", "a sentence for the report's caveats, e.g. what else ran on the machine")
    .option(
      "--only <scenarios>",
      "run only these scenarios, by number or id, comma-separated (e.g. 10 or batches,streaming); never rewrites bench/REPORT.md",
      (value: string) =>
        value
          .split(",")
          .map((v) => v.trim())
          .filter(Boolean),
    )
    .addHelpText(
      "after",
      "\nStarts its own stack (emulators, simulator, every function as a child process) on free 127.0.0.1 ports,\nruns its ten scenarios one after another and writes <out>/<timestamp>.{json,md} plus SVG charts.\nA full run into the default folder also rewrites bench/REPORT.md, the committed reference.",
    )
    .action(async (opts: { quick?: boolean; out?: string; note?: string; only?: string[] }) => {
      // Loaded here: the bench starts emulators (devDependencies, not in the production image).
      const { DEFAULT_OUT_DIR, runBench } = await import("../../bench/run.ts");
      const outcome = await runBench({
        quick: opts.quick === true,
        outDir: opts.out ?? DEFAULT_OUT_DIR,
        note: opts.note,
        only: opts.only,
      });
      print(`report  ${outcome.markdownPath}`);
      print(`json    ${outcome.jsonPath}`);
      if (outcome.referencePath) print(`reference ${outcome.referencePath}`);
      for (const s of outcome.report.scenarios) {
        print(
          `${s.number}. ${s.title}: ${s.status === "ok" ? s.headline.join("; ") : `${s.status}: ${s.reason ?? s.headline.join("; ")}`}`,
        );
      }
    });
}
