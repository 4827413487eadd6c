import type { Command } from "commander";
import { dashboardOptionsFromEnv, loadDashboardEnv } from "../../dashboard/config.ts";
import { type Dashboard, startDashboard } from "../../dashboard/server.ts";
import { createLogger } from "../../functions/shared/logger.ts";
import { devBanner, startDev } from "../../local/dev.ts";
import { print } from "../context.ts";

export function registerDev(program: Command): void {
  program
    .command("dev")
    .description(
      "the whole pipeline on this machine: emulated SQS and DynamoDB, the model simulator (unless INFERENCE_URL is set), every function",
    )
    .addHelpText(
      "after",
      "\nPorts: ingest 8080, SQS 4566, DynamoDB 4567, simulator 8000, dashboard 8090. Data is kept under DEEPQUEUE_DATA_DIR (.deepqueue/).\nThe dev tenant's key is DEEPQUEUE_DEV_API_KEY, or one generated and kept in the data folder.",
    )
    .action(async () => {
      const stack = await startDev();
      const dashboard = await startDevDashboard();
      print(withDashboard(devBanner(stack), dashboard));
      await waitForSignal();
      print("\nstopping…");
      if (typeof dashboard !== "string") await dashboard.stop();
      await stack.stop();
      print("stopped");
    });
}

/**
 * The dashboard beside the dev stack, reading the endpoints `startDev` wrote
 * into the environment; open (loopback, dev mode). A dashboard that cannot
 * start (its port is taken) is reported, and dev runs on without it.
 */
async function startDevDashboard(): Promise<Dashboard | string> {
  try {
    const env = loadDashboardEnv(process.env);
    return await startDashboard({
      ...dashboardOptionsFromEnv(env),
      devMode: true,
      logger: createLogger({ name: "dashboard", level: env.LOG_LEVEL }),
    });
  } catch (error) {
    return `(not started: ${error instanceof Error ? error.message : String(error)})`;
  }
}

/** The banner with the dashboard's line under ingest's. */
export function withDashboard(banner: string, dashboard: Dashboard | string): string {
  const line = `  dashboard   ${typeof dashboard === "string" ? dashboard : dashboard.url}`;
  const lines = banner.split("\n");
  const ingest = lines.findIndex((l) => l.startsWith("  ingest"));
  lines.splice(ingest + 1, 0, line);
  return lines.join("\n");
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(143));
      resolve(signal);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
}
