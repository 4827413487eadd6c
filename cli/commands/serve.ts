import type { Command } from "commander";
import { FUNCTION_NAMES, type FunctionName, serveFunction } from "../../functions/runtime/serve.ts";
import { port, UsageError } from "../options.ts";
import { print } from "../output.ts";
import { announceReady, waitForSignal } from "../ready.ts";

function functionName(value: string): FunctionName {
  if (!(FUNCTION_NAMES as readonly string[]).includes(value)) {
    throw new UsageError(`unknown function "${value}" (one of: ${FUNCTION_NAMES.join(", ")})`);
  }
  return value as FunctionName;
}

/** `deepqueue serve <ingest|cache|batcher|deliver>`: one function, as its container runs it; SIGTERM drains. */
export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("run one function, as its container runs it (SIGTERM/SIGINT drain, then exit)")
    .argument("<function>", `one of ${FUNCTION_NAMES.join(", ")}`, functionName)
    .option("--port <port>", "ingest HTTP port (default: PORT or 8080)", port())
    .option(
      "--metrics-port <port>",
      "a worker's /healthz + /metrics port (default: DEEPQUEUE_WORKER_METRICS_PORT or 9090)",
      port(),
    )
    .option("--host <host>", "interface to listen on (default: 0.0.0.0, as in a container)")
    .action(async (name: FunctionName, options: { port?: number; metricsPort?: number; host?: string }) => {
      // Pretty lines only when `dev` started this process on a terminal; JSON everywhere else.
      const { useLogDestination } = await import("../../functions/shared/logger.ts");
      const { terminalLogDestination } = await import("../../local/pretty-log.ts");
      useLogDestination(await terminalLogDestination({ isTTY: false }));
      const served = await serveFunction(name, {
        ...(options.host !== undefined ? { host: options.host } : {}),
        ...(options.port !== undefined ? { port: options.port } : {}),
        ...(options.metricsPort !== undefined ? { metricsPort: options.metricsPort } : {}),
      });
      const quiet = announceReady(served.url ? { url: served.url } : { metricsUrl: served.metricsUrl ?? "" });
      if (!quiet) {
        print(
          served.url
            ? `${name} listening on ${served.url}`
            : `${name} worker running; health and metrics on ${served.metricsUrl}`,
        );
      }
      const signal = await waitForSignal();
      if (!quiet) print(`${signal}: draining ${name}…`);
      // A drain that hangs (a stuck call, a peer that never answers) must not leave the process
      // behind, least of all an orphan whose `dev` is gone: exit after the drain grace and a margin.
      const graceSeconds = Number(process.env.DEEPQUEUE_WORKER_DRAIN_SECONDS ?? 25) || 25;
      setTimeout(() => process.exit(1), (graceSeconds + 10) * 1000).unref();
      await served.stop();
      if (!quiet) print("stopped");
      process.exit(0);
    });
}
