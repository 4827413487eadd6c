import type { Command } from "commander";
import type { Dashboard } from "../../dashboard/server.ts";
import { useLogDestination } from "../../functions/shared/logger.ts";
import { DEV_DEFAULT_PORTS, devBanner, startDev } from "../../local/dev.ts";
import { terminalLogDestination } from "../../local/pretty-log.ts";
import { print } from "../context.ts";
import { port } from "../options.ts";
import { waitForSignal } from "../ready.ts";

export function registerDev(program: Command): void {
  program
    .command("dev")
    .description(
      "the whole pipeline on this machine: emulated SQS and DynamoDB, the model simulator (unless INFERENCE_URL is set), every function, the dashboard",
    )
    .addHelpText(
      "after",
      "\nPorts: ingest 8080, SQS 4566, DynamoDB 4567, simulator 8000, dashboard 8090. Data is kept under DEEPQUEUE_DATA_DIR (.deepqueue/).\nThe dev tenant's key is DEEPQUEUE_DEV_API_KEY, or one generated and kept in the data folder.",
    )
    .option("--ingest-port <port>", "ingest's port (0: any free one)", port(), DEV_DEFAULT_PORTS.ingest)
    .option("--sqs-port <port>", "the SQS emulator's port", port(), DEV_DEFAULT_PORTS.sqs)
    .option("--dynamodb-port <port>", "the DynamoDB emulator's port", port(), DEV_DEFAULT_PORTS.dynamo)
    .option("--sim-port <port>", "the simulator's port", port(), DEV_DEFAULT_PORTS.sim)
    .option(
      "--metrics-port <port>",
      "the cache worker's /healthz + /metrics port; the batcher's is the next, deliver's the one after",
      port(),
      DEV_DEFAULT_PORTS.metrics,
    )
    .option("--no-dashboard", "do not start the dashboard")
    .action(
      async (
        options: Record<"ingestPort" | "sqsPort" | "dynamodbPort" | "simPort" | "metricsPort", number> & {
          dashboard: boolean;
        },
      ) => {
        // One coloured line per log entry on a terminal; JSON lines when piped or in a container.
        useLogDestination(await terminalLogDestination());
        const stack = await startDev({
          ports: {
            ingest: options.ingestPort,
            sqs: options.sqsPort,
            dynamo: options.dynamodbPort,
            sim: options.simPort,
            metrics: options.metricsPort,
          },
        });
        const dashboard = options.dashboard ? await startDevDashboard() : undefined;
        print(dashboard ? withDashboard(devBanner(stack), dashboard) : devBanner(stack));
        await waitForSignal();
        print("\nstopping…");
        if (dashboard && typeof dashboard !== "string") await dashboard.stop();
        await stack.stop();
        print("stopped");
      },
    );
}

/**
 * The dashboard beside the dev stack, in dev's own process (it reads queue
 * attributes and a few index pages every couple of seconds), reading the
 * endpoints `startDev` wrote into the environment; open (loopback, dev mode).
 * A dashboard that cannot start (its port is taken) is reported, and dev runs
 * on without it.
 */
async function startDevDashboard(): Promise<Dashboard | string> {
  try {
    const { dashboardOptionsFromEnv, loadDashboardEnv } = await import("../../dashboard/config.ts");
    const { startDashboard } = await import("../../dashboard/server.ts");
    const { createLogger } = await import("../../functions/shared/logger.ts");
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
