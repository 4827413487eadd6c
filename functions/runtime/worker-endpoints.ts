import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { metricsText } from "../shared/metrics.ts";

export interface WorkerEndpoints {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface WorkerEndpointsOptions {
  port: number;
  /** @default "127.0.0.1" */
  host?: string;
  health: () => Promise<boolean>;
}

/**
 * `/healthz` (200 when `health()` resolves true, else 503) and `/metrics`
 * (Prometheus text) on a small port: what the worker Deployment's probes and
 * Prometheus scrape.
 *
 * @example const endpoints = await serveWorkerEndpoints({ port: 9090, health: async () => worker.healthy() });
 */
export async function serveWorkerEndpoints(options: WorkerEndpointsOptions): Promise<WorkerEndpoints> {
  const host = options.host ?? "127.0.0.1";
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      options
        .health()
        .catch(() => false)
        .then((ok) => {
          res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
          res.end(JSON.stringify({ status: ok ? "ok" : "unavailable" }));
        });
      return;
    }
    if (req.method === "GET" && path === "/metrics") {
      metricsText().then(({ contentType, body }) => {
        res.writeHead(200, { "content-type": contentType });
        res.end(body);
      });
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: "not_found", message: "not found" } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
