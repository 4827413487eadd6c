import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createHttpClient, NO_ANSWER } from "./load.ts";

/**
 * The source design's shape, for comparison (scenario 3): a synchronous HTTP
 * gateway that calls the model once per request while the client waits, with
 * a fixed pool of workers — what a Django view with a blocking `requests`
 * client under gunicorn sync workers does. Defaults are those deployments':
 * gunicorn's `--workers` sized to a small box, `--backlog 2048`, `--timeout 30`;
 * the source's client: 10 s timeout, 3 retries, backoff factor 1 s on
 * 500/502/503/504.
 */
export const SYNC_GATEWAY_DEFAULTS = {
  /** Sync workers: each handles one request at a time (gunicorn `--workers 4`). */
  workers: 4,
  /** Requests allowed to wait for a worker; more are refused with 503 (gunicorn `--backlog`). */
  backlog: 2048,
  /** A worker busy longer than this is killed and the request answered 504 (gunicorn `--timeout`). */
  workerTimeoutMs: 30_000,
  /** Per model call (`requests.post(..., timeout=10)`). */
  modelTimeoutMs: 10_000,
  retries: 3,
  /** urllib3 `Retry(backoff_factor=1)`: 1 s, 2 s, 4 s. */
  backoffFactorMs: 1_000,
};

export type SyncGatewayOptions = typeof SYNC_GATEWAY_DEFAULTS & { modelUrl: string; model: string };

export interface SyncGateway {
  url: string;
  options: SyncGatewayOptions;
  stats(): { refused: number; workerTimeouts: number; modelErrors: number; maxWaiting: number };
  stop(): Promise<void>;
}

const RETRY_STATUSES = new Set([500, 502, 503, 504]);

/** @example const gw = await startSyncGateway({ modelUrl: sim.url, model: "deepseek-chat" }); */
export async function startSyncGateway(
  options: Partial<typeof SYNC_GATEWAY_DEFAULTS> & { modelUrl: string; model: string },
): Promise<SyncGateway> {
  const opts: SyncGatewayOptions = { ...SYNC_GATEWAY_DEFAULTS, ...options };
  const model = createHttpClient(opts.workers * 2);
  const waiting: Array<() => void> = [];
  let busy = 0;
  const counts = { refused: 0, workerTimeouts: 0, modelErrors: 0, maxWaiting: 0 };

  const release = () => {
    busy -= 1;
    const next = waiting.shift();
    if (next) {
      busy += 1;
      next();
    }
  };

  /** The "view": one blocking model call, retried like urllib3's Retry. */
  async function callModel(body: string): Promise<{ status: number; text: string }> {
    for (let attempt = 0; ; attempt++) {
      const answer = await model.request(`${opts.modelUrl}/completions`, {
        method: "POST",
        body,
        timeoutMs: opts.modelTimeoutMs,
      });
      const retryable = answer.status === NO_ANSWER || RETRY_STATUSES.has(answer.status);
      if (!retryable || attempt >= opts.retries) return { status: answer.status, text: answer.body };
      await sleep(opts.backoffFactorMs * 2 ** attempt);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const input = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
      prompt: string;
      max_tokens?: number;
      temperature?: number;
    };
    if (busy >= opts.workers) {
      if (waiting.length >= opts.backlog) {
        counts.refused += 1;
        res.writeHead(503).end(JSON.stringify({ status: "error", message: "backlog full" }));
        return;
      }
      const gone = await new Promise<boolean>((resolve) => {
        const onClose = () => {
          const i = waiting.indexOf(go);
          if (i >= 0) waiting.splice(i, 1);
          resolve(true);
        };
        const go = () => {
          res.off("close", onClose);
          resolve(false);
        };
        waiting.push(go);
        counts.maxWaiting = Math.max(counts.maxWaiting, waiting.length);
        res.once("close", onClose);
      });
      if (gone) return; // the client gave up while the request sat in the backlog
    } else {
      busy += 1;
    }
    try {
      const body = JSON.stringify({
        model: opts.model,
        prompt: input.prompt,
        max_tokens: input.max_tokens ?? 512,
        temperature: input.temperature ?? 0.7,
      });
      const outcome = await Promise.race([
        callModel(body),
        sleep(opts.workerTimeoutMs).then(() => undefined),
      ]);
      if (!outcome) {
        counts.workerTimeouts += 1;
        res.writeHead(504).end(JSON.stringify({ status: "error", message: "worker timeout" }));
        return;
      }
      if (outcome.status !== 200) {
        counts.modelErrors += 1;
        res
          .writeHead(502)
          .end(JSON.stringify({ status: "error", message: `model answered ${outcome.status}` }));
        return;
      }
      const text = (JSON.parse(outcome.text) as { choices: Array<{ text: string }> }).choices[0]?.text ?? "";
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ status: "success", result: text }));
    } finally {
      release();
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    options: opts,
    stats: () => ({ ...counts }),
    async stop() {
      model.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
