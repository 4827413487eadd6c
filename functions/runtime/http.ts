import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from "aws-lambda";
import { LIMITS } from "../../events/index.ts";
import { type HttpError, PayloadTooLargeError, toHttpError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { withoutUndefined } from "../shared/options.ts";

/** A Lambda handler for API Gateway HTTP API (payload format 2.0) events. */
export type HttpLambdaHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) =>
  | Promise<APIGatewayProxyResultV2 | StreamingResult | undefined>
  | APIGatewayProxyResultV2
  | StreamingResult
  | undefined;

export interface ServeHttpOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Interface to listen on. @default "0.0.0.0" (a container must accept the kubelet's and Knative's traffic) */
  host?: string;
  /**
   * Largest request body; larger ones get 413 while being read. A function may give each route its
   * own (ingest: `POST /v1/files` takes files far larger than a request). @default 262144 (the API's 256 KiB)
   */
  bodyLimitBytes?: number | ((request: { method: string; path: string }) => number);
  /** How long close() waits for in-flight requests before cutting connections. @default 10000 */
  drainMs?: number;
  /**
   * What `context.getRemainingTimeInMillis()` counts down from, per request; a function may give each
   * route its own (ingest: a chat completion waits for its answer on the line). @default 30000
   */
  requestTimeoutMs?: number | ((request: { method: string; path: string }) => number);
  /** Idle keep-alive time; above typical load-balancer idle timeouts (60 s) so they close first. @default 65000 */
  keepAliveTimeoutMs?: number;
  /** `context.functionName`. @default "deepqueue" */
  functionName?: string;
  /**
   * Looks at a request's method, path and headers before its body is read; an
   * error it returns is answered at once and the body is discarded unread (a
   * tenant that is refused anyway does not cost a 256 KiB read and parse).
   * Must be cheap and synchronous: no store call.
   */
  preflight?: (request: {
    method: string;
    path: string;
    headers: IncomingMessage["headers"];
  }) => HttpError | undefined;
  logger?: Logger;
}

export interface HttpServerHandle {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish (up to drainMs), then resolves. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * The request target as a URL. Origin-form targets are appended to a fixed
 * origin rather than resolved against it: `new URL("//x/y", base)` would read
 * "//x" as a host (path confusion) or throw on "//" (a 500 from a bad path).
 * Anything unparsable becomes "/" (answered 404 by the router).
 */
function requestUrl(target: string | undefined): URL {
  const raw = target ?? "/";
  try {
    return raw.startsWith("/") ? new URL(`http://localhost${raw}`) : new URL(raw, "http://localhost");
  } catch {
    return new URL("http://localhost/");
  }
}

/** After a 413, at most this much more of the refused body is read (and dropped) before the socket is cut. */
const DISCARD_LIMIT_BYTES = 1024 * 1024;

/** Bodies passed as text; anything else is base64, as API Gateway does for binary media types. */
const TEXT_TYPES = /^(text\/|application\/(json|[a-z.+-]*\+json|x-www-form-urlencoded|xml|javascript))/i;

/** serveHttp's defaults, in one place. */
export const HTTP_DEFAULTS = {
  host: "0.0.0.0",
  bodyLimitBytes: LIMITS.bodyBytes,
  drainMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  functionName: "deepqueue",
} as const;

/**
 * A response body written as it comes (Lambda response streaming's shape, as middy's
 * `streamifyResponse` takes it: https://middy.js.org/docs/intro/streamify-response): a web
 * ReadableStream, a Node Readable or any async iterable of text or bytes.
 */
export type StreamingBody = ReadableStream<string | Uint8Array> | AsyncIterable<string | Uint8Array>;

/** A handler result whose body streams: status and headers first, then each chunk as it comes. */
export interface StreamingResult {
  statusCode: number;
  headers?: Record<string, string | number | boolean>;
  body: StreamingBody;
}

/** Whether a result's body is to be streamed (anything but a string or nothing). */
export function isStreamingBody(body: unknown): body is StreamingBody {
  return (
    body instanceof ReadableStream ||
    (typeof body === "object" && body !== null && Symbol.asyncIterator in body)
  );
}

function toWebStream(body: StreamingBody): ReadableStream<string | Uint8Array> {
  if (body instanceof ReadableStream) return body;
  if (body instanceof Readable) return Readable.toWeb(body) as ReadableStream<string | Uint8Array>;
  return ReadableStream.from(body);
}

type Settings = Required<Omit<ServeHttpOptions, "preflight" | "logger">> &
  Pick<ServeHttpOptions, "preflight" | "logger">;

/**
 * The server behind serveHttp: one Node HTTP server, a request → event → handler → response
 * path in small steps, and the drain.
 */
class HttpAdapter {
  readonly #handler: HttpLambdaHandler;
  readonly #settings: Settings;
  readonly #server: Server;
  #draining = false;
  #closing: Promise<void> | undefined;

  constructor(handler: HttpLambdaHandler, options: ServeHttpOptions) {
    this.#handler = handler;
    this.#settings = { ...HTTP_DEFAULTS, ...withoutUndefined(options) } as Settings;
    this.#server = createServer({ keepAliveTimeout: this.#settings.keepAliveTimeoutMs }, (req, res) =>
      this.#serve(req, res),
    );
    // headersTimeout must exceed keepAliveTimeout, or Node cuts idle keep-alive sockets mid-header.
    this.#server.headersTimeout = this.#settings.keepAliveTimeoutMs + 1_000;
    // `Expect: 100-continue`: refuse a too-large body before the client sends it.
    this.#server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
      if (this.#declaredTooLarge(req)) return this.#tooLarge(req, res);
      res.writeContinue();
      this.#server.emit("request", req, res);
    });
  }

  async listen(): Promise<HttpServerHandle> {
    const { port: wanted, host } = this.#settings;
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(wanted, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    const port = (this.#server.address() as AddressInfo).port;
    const urlHost =
      host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
    return { url: `http://${urlHost}:${port}`, port, close: () => this.close() };
  }

  /** Stops accepting, lets in-flight requests finish (up to drainMs), then resolves. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#draining = true;
      const force = setTimeout(() => this.#server.closeAllConnections(), this.#settings.drainMs);
      force.unref();
      this.#server.close(() => {
        clearTimeout(force);
        resolve();
      });
      // Idle keep-alive sockets close now; busy ones after their response (connection: close).
      this.#server.closeIdleConnections();
    });
    return this.#closing;
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    this.#onRequest(req, res).catch((error) => {
      this.#settings.logger?.error({ err: error }, "request failed in the HTTP adapter");
      if (!res.headersSent) sendError(res, toHttpError(error));
      else res.destroy();
    });
  }

  async #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A draining server tells keep-alive clients to reconnect (to another replica).
    if (this.#draining) res.setHeader("connection", "close");
    if (this.#declaredTooLarge(req)) return this.#refuse(req, res);
    const refusal = this.#settings.preflight?.({
      method: req.method ?? "GET",
      path: (req.url ?? "/").split("?")[0]!,
      headers: req.headers,
    });
    if (refusal) return this.#refuse(req, res, refusal);
    const body = await readBody(req, this.#limit(req));
    if (body === undefined) return this.#refuse(req, res);
    let result: APIGatewayProxyResultV2 | StreamingResult | undefined;
    try {
      const timeoutMs = this.#perRoute(req, this.#settings.requestTimeoutMs);
      result = await this.#handler(toEvent(req, body), lambdaContext(this.#settings.functionName, timeoutMs));
    } catch (error) {
      this.#settings.logger?.error({ err: error, path: req.url }, "handler threw");
      return sendError(res, toHttpError(error));
    }
    if (this.#draining) res.setHeader("connection", "close");
    await writeResult(res, result);
  }

  /** Answers `error` (413 by default) at once and drops the unread body. */
  #refuse(req: IncomingMessage, res: ServerResponse, error?: HttpError): void {
    if (error) sendError(res, error);
    else this.#tooLarge(req, res);
    cutAfter(req);
  }

  #tooLarge(req: IncomingMessage, res: ServerResponse): void {
    const error = new PayloadTooLargeError(this.#limit(req));
    send(
      res,
      413,
      { "content-type": "application/json", connection: "close" },
      JSON.stringify(error.toBody()),
    );
  }

  #declaredTooLarge(req: IncomingMessage): boolean {
    const declared = req.headers["content-length"];
    return declared !== undefined && Number(declared) > this.#limit(req);
  }

  /** The body limit of this request's route. */
  #limit(req: IncomingMessage): number {
    return this.#perRoute(req, this.#settings.bodyLimitBytes);
  }

  /** A setting given as one number or per route. */
  #perRoute(
    req: IncomingMessage,
    value: number | ((request: { method: string; path: string }) => number),
  ): number {
    if (typeof value === "number") return value;
    return value({ method: req.method ?? "GET", path: (req.url ?? "/").split("?")[0]! });
  }
}

/**
 * Runs a Lambda-shaped HTTP handler behind a Node HTTP server, as a Knative
 * Service container does: each request becomes an API Gateway payload v2
 * event (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html),
 * the result becomes the response — written at once, or chunk by chunk when its body streams
 * (`StreamingBody`, e.g. server-sent events), the stream cancelled when the client goes away.
 * Keep-alive stays on; bodies over the limit
 * are refused with 413 from `Content-Length` (or `Expect: 100-continue`)
 * before any byte is read, or as soon as a streamed body passes the limit,
 * never buffering more than the limit. `close()` drains: Knative sends
 * SIGTERM and keeps routing for a while, so the caller wires the signal.
 *
 * @example
 * const server = await serveHttp(handler, { port: 8080 });
 * process.once("SIGTERM", () => void server.close());
 */
export async function serveHttp(
  handler: HttpLambdaHandler,
  options: ServeHttpOptions,
): Promise<HttpServerHandle> {
  return new HttpAdapter(handler, options).listen();
}

/** Reads the body up to `max` bytes; undefined when it is larger (the rest is dropped, up to a cap). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (over) {
        if (size > max + DISCARD_LIMIT_BYTES) req.socket.destroy();
        return;
      }
      if (size > max) {
        over = true;
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.once("end", () => {
      if (!over) resolve(Buffer.concat(chunks, size));
    });
    req.once("error", reject);
  });
}

/** After a refusal, drop at most DISCARD_LIMIT_BYTES more of the body, then cut the connection. */
function cutAfter(req: IncomingMessage): void {
  let dropped = 0;
  req.on("data", (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DISCARD_LIMIT_BYTES) req.socket.destroy();
  });
  req.resume();
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string) {
  if (res.headersSent) return;
  res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res: ServerResponse, error: HttpError): void {
  send(
    res,
    error.status,
    { "content-type": "application/json", ...error.headers },
    JSON.stringify(error.toBody()),
  );
}

/** The response's headers, lower-cased, with the adapter's own `connection` kept. */
function headersOf(res: ServerResponse, headers: Record<string, unknown> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = String(value);
  const connection = res.getHeader("connection");
  if (connection) out.connection = String(connection);
  return out;
}

/** API Gateway v2's result rules: a bare string or object is a 200 JSON body; a stream is streamed. */
async function writeResult(
  res: ServerResponse,
  result: APIGatewayProxyResultV2 | StreamingResult | undefined,
): Promise<void> {
  if (result === undefined || typeof result !== "object" || !("statusCode" in result)) {
    const body = typeof result === "string" ? result : JSON.stringify(result ?? null);
    send(res, 200, { "content-type": "application/json" }, body);
    return;
  }
  if (isStreamingBody(result.body)) {
    res.writeHead(result.statusCode ?? 200, headersOf(res, result.headers));
    await writeStream(res, result.body);
    return;
  }
  const structured = result as Exclude<APIGatewayProxyResultV2, string>;
  const body =
    structured.body === undefined
      ? Buffer.alloc(0)
      : structured.isBase64Encoded
        ? Buffer.from(structured.body, "base64")
        : Buffer.from(structured.body);
  if (structured.cookies?.length) res.setHeader("set-cookie", structured.cookies);
  res.writeHead(structured.statusCode ?? 200, {
    ...headersOf(res, structured.headers),
    "content-length": body.length,
  });
  res.end(body);
}

/** Resolves when `res` can take more, or is closed. */
function drained(res: ServerResponse): Promise<void> {
  const settled = new AbortController();
  const on = (event: string) => once(res, event, { signal: settled.signal }).catch(() => {});
  return Promise.race([on("drain"), on("close")]).then(() => settled.abort());
}

/**
 * Writes a streaming body chunk by chunk (each flushed as it comes, chunked transfer encoding),
 * honouring back-pressure. The client going away cancels the stream: its producer stops waiting.
 */
async function writeStream(res: ServerResponse, body: StreamingBody): Promise<void> {
  const reader = toWebStream(body).getReader();
  const onClose = () => {
    if (!res.writableFinished) void reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || res.destroyed) break;
      if (!res.write(value)) await drained(res);
    }
    if (!res.destroyed) res.end();
  } catch (error) {
    // Headers are out: a failing stream can only be cut, so the client sees it incomplete.
    res.destroy(error as Error);
  } finally {
    res.off("close", onClose);
    reader.releaseLock();
  }
}

/** The payload v2 event of one request (headers lower-cased and joined with commas, cookies apart). */
export function toEvent(req: IncomingMessage, body: Buffer): APIGatewayProxyEventV2 {
  const url = requestUrl(req.url);
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const value = req.rawHeaders[i + 1]!;
    if (name === "cookie") cookies.push(...value.split(/;\s*/).filter(Boolean));
    else headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams)
    query[name] = query[name] === undefined ? value : `${query[name]},${value}`;
  const now = new Date();
  const host = headers.host ?? "localhost";
  const contentType = headers["content-type"] ?? "";
  const text = body.length === 0 || TEXT_TYPES.test(contentType) || contentType === "";
  const event: APIGatewayProxyEventV2 = {
    version: "2.0",
    routeKey: "$default",
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: "anonymous",
      apiId: "deepqueue",
      domainName: host,
      domainPrefix: host.split(".")[0] ?? host,
      http: {
        method: req.method ?? "GET",
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? "",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: !text,
    ...(body.length ? { body: text ? body.toString("utf8") : body.toString("base64") } : {}),
    ...(cookies.length ? { cookies } : {}),
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
  };
  return event;
}

function lambdaContext(functionName: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  const noop = () => {};
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: "0",
    awsRequestId: randomUUID(),
    logGroupName: `/deepqueue/${functionName}`,
    logStreamName: "http",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: noop,
    fail: noop,
    succeed: noop,
  };
}
