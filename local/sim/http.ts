import type { IncomingMessage, ServerResponse } from "node:http";
import { DeepqueueError } from "../../functions/shared/errors.ts";
import { errorBody } from "./openai-schema.ts";

/** An HTTP answer thrown from deep inside a handler; the router sends it. */
export class HttpAnswer extends DeepqueueError {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
    this.name = "HttpAnswer";
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** The body as JSON, at most `limit` bytes; 413 / 400 as vLLM answers them. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      throw new HttpAnswer(413, errorBody(413, "BadRequestError", `request body larger than ${limit} bytes`));
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpAnswer(400, errorBody(400, "BadRequestError", "the body is not valid JSON"));
  }
}

/** Waits `ms`; resolves true if the client went away meanwhile. `timers` lets stop() clear it. */
export function delayUnlessClosed(
  ms: number,
  res: ServerResponse,
  timers: Set<NodeJS.Timeout>,
): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = () => {
      clearTimeout(timer);
      timers.delete(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      timers.delete(timer);
      res.off("close", onClose);
      resolve(false);
    }, ms);
    timers.add(timer);
    res.once("close", onClose);
  });
}
