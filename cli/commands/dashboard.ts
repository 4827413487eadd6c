import type { Command } from "commander";
import { dashboardOptionsFromEnv, loadDashboardEnv } from "../../dashboard/config.ts";
import { startDashboard } from "../../dashboard/server.ts";
import { createLogger } from "../../functions/shared/logger.ts";
import { print } from "../context.ts";
import { port } from "../options.ts";
import { waitForSignal } from "../ready.ts";

export function registerDashboard(program: Command): void {
  program
    .command("dashboard")
    .description("the operator's web dashboard: queues, requests, tenants, dead letters, model servers, live")
    .option("--port <port>", "port (default DEEPQUEUE_DASHBOARD_PORT or 8090)", port("--port"))
    .option("--host <host>", "address to listen on (default DEEPQUEUE_DASHBOARD_HOST or 127.0.0.1)")
    .addHelpText(
      "after",
      "\nReads the same AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL_DYNAMODB and DEEPQUEUE_PREFIX as every command.\nOpen without login on loopback in dev mode (DEEPQUEUE_DEV_MODE, or both endpoints on loopback);\nanywhere else it requires DEEPQUEUE_ADMIN_TOKEN.",
    )
    .action(async (options: { port?: number; host?: string }) => {
      const env = loadDashboardEnv();
      const dashboard = await startDashboard({
        ...dashboardOptionsFromEnv(env),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.host ? { host: options.host } : {}),
        logger: createLogger({ name: "dashboard", level: env.LOG_LEVEL }),
      });
      print(
        `dashboard ${dashboard.url}${dashboard.open ? " (open: loopback, dev mode)" : " (log in with DEEPQUEUE_ADMIN_TOKEN)"}`,
      );
      await waitForSignal();
      await dashboard.stop();
    });
}
