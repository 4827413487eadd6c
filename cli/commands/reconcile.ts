import type { Command } from "commander";
import { loadReconcilerEnv } from "../../functions/reconciler/config.ts";
import { reconcilerDepsFromEnv } from "../../functions/reconciler/deps.ts";
import { runReconcilerOnce, startReconcilerLoop } from "../../functions/reconciler/reconciler.ts";
import { cliContext, print } from "../context.ts";
import { positiveNumber } from "../options.ts";

export function registerReconcile(program: Command): void {
  program
    .command("reconcile")
    .description("end requests stuck past their deadline as failed, emitting their failed event")
    .option("--once", "one run, then exit (the Kubernetes CronJob runs this)")
    .option(
      "--interval <s>",
      "seconds between runs (default $DEEPQUEUE_RECONCILE_INTERVAL_SECONDS or 60)",
      positiveNumber("--interval"),
    )
    .option("--json", "print each run's report as a JSON line")
    .action(async (options: { once?: boolean; interval?: number; json?: boolean }) => {
      const env = loadReconcilerEnv();
      const ctx = cliContext();
      const deps = reconcilerDepsFromEnv(process.env, { sqs: ctx.sqs, ddb: ctx.ddb });
      const report = (r: Awaited<ReturnType<typeof runReconcilerOnce>>) =>
        print(
          options.json
            ? JSON.stringify(r)
            : `checked ${r.checked} overdue request(s): ended ${r.failed.length} failed${r.raced ? `, ${r.raced} finished meanwhile` : ""}`,
        );
      try {
        if (options.once) {
          report(await runReconcilerOnce(deps));
          return;
        }
        const intervalMs = (options.interval ?? env.DEEPQUEUE_RECONCILE_INTERVAL_SECONDS) * 1000;
        const loop = startReconcilerLoop(deps, { intervalMs, onReport: report });
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off("SIGINT", stop);
            process.off("SIGTERM", stop);
            resolve();
          };
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
        });
        await loop.stop();
      } finally {
        ctx.close();
      }
    });
}
