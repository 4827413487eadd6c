import { Agent, createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A pass-through HTTP proxy in front of the model server that records when
 * each inference call started and ended and which prompts it carried. It is
 * how the bench sees the model's own time inside the pipeline (scenario 6) and
 * how full the model was kept (scenario 2). The direct measurements go through
 * it too, so both sides pay the same extra loopback hop.
 */
export interface ModelCall {
  path: string;
  /** Epoch ms when the proxy got the request / finished sending the answer. */
  start: number;
  end: number;
  status: number;
  /** The first 120 characters of each prompt (completions) or of the last message (chat). */
  prompts: string[];
}

export interface ModelProxy {
  /** OpenAI base URL (`…/v1`), what INFERENCE_URL takes. */
  url: string;
  /** Calls that started at or after `sinceMs` (epoch ms). */
  calls(sinceMs?: number): ModelCall[];
  stop(): Promise<void>;
}

const KEEP = 50_000;
const PREVIEW = 120;

function promptsOf(body: string): string[] {
  try {
    const parsed = JSON.parse(body) as { prompt?: unknown; messages?: Array<{ content?: unknown }> };
    if (typeof parsed.prompt === "string") return [parsed.prompt.slice(0, PREVIEW)];
    if (Array.isArray(parsed.prompt)) return parsed.prompt.map((p) => String(p).slice(0, PREVIEW));
    const last = parsed.messages?.at(-1)?.content;
    return typeof last === "string" ? [last.slice(0, PREVIEW)] : [];
  } catch {
    return [];
  }
}

/** @example const proxy = await startModelProxy(sim.url); env.INFERENCE_URL = proxy.url; */
export async function startModelProxy(upstreamBaseUrl: string): Promise<ModelProxy> {
  const upstream = new URL(upstreamBaseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
  const log: ModelCall[] = [];
  const server = createServer((req, res) => {
    const start = Date.now();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const call: ModelCall = {
        path: req.url ?? "/",
        start,
        end: 0,
        status: 0,
        prompts: req.method === "POST" ? promptsOf(body.toString("utf8")) : [],
      };
      const headers = { ...req.headers, host: upstream.host };
      const out = httpRequest(
        {
          agent,
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          answer.on("end", () => {
            call.end = Date.now();
            call.status = answer.statusCode ?? 0;
            if (req.url?.includes("completions")) {
              log.push(call);
              if (log.length > KEEP) log.shift();
            }
          });
        },
      );
      out.on("error", () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      res.on("close", () => {
        if (!res.writableFinished) out.destroy();
      });
      out.end(body);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname.replace(/\/$/, "")}`,
    calls: (sinceMs = 0) => log.filter((c) => c.start >= sinceMs),
    async stop() {
      agent.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
