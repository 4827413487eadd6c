import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from "aws-lambda";
import { LIMITS } from "../../events/index.ts";
import { type HttpError, PayloadTooLargeError, toHttpError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";

/** A Lambda handler for API Gateway HTTP API (payload format 2.0) events. */
export type HttpLambdaHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyResultV2 | undefined> | APIGatewayProxyResultV2 | undefined;

export interface ServeHttpOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** Interface to listen on. @default "0.0.0.0" (a container must accept the kubelet's and Knative's traffic) */
  host?: string;
  /**
   * Largest request body; larger ones get 413 while being read. A function gives each route its
   * own (ingest: `POST /v1/files` takes files far larger than a request). @default 262144 (the API's 256 KiB)
   */
  bodyLimitBytes?: number | ((request: { method: string; path: string }) => number);
  /** How long close() waits for in-flight requests before cutting connections. @default 10000 */
  drainMs?: number;
  /** What `context.getRemainingTimeInMillis()` counts down from, per request. @default 30000 */
  requestTimeoutMs?: number;
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

/**
 * Runs a Lambda-shaped HTTP handler behind a Node HTTP server, as a Knative
 * Service container does: each request becomes an API Gateway payload v2
 * event (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html),
 * the result becomes the response. Keep-alive stays on; bodies over the limit
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
  const host = options.host ?? "0.0.0.0";
  const bodyLimit = options.bodyLimitBytes ?? LIMITS.bodyBytes;
  const limitFor = (req: IncomingMessage) =>
    typeof bodyLimit === "number"
      ? bodyLimit
      : bodyLimit({ method: req.method ?? "GET", path: (req.url ?? "/").split("?")[0]! });
  const drainMs = options.drainMs ?? 10_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const functionName = options.functionName ?? "deepqueue";
  const logger = options.logger;
  let draining = false;

  const tooLarge = (res: ServerResponse, limit: number) => {
    const error = new PayloadTooLargeError(limit);
    send(
      res,
      413,
      { "content-type": "application/json", connection: "close" },
      JSON.stringify(error.toBody()),
    );
  };

  const declaredTooLarge = (req: IncomingMessage, limit: number) => {
    const declared = req.headers["content-length"];
    return declared !== undefined && Number(declared) > limit;
  };

  async function onRequest(req: IncomingMessage, res: ServerResponse) {
    if (draining) res.setHeader("connection", "close");
    const limit = limitFor(req);
    if (declaredTooLarge(req, limit)) {
      tooLarge(res, limit);
      cutAfter(req, 0);
      return;
    }
    const refusal = options.preflight?.({
      method: req.method ?? "GET",
      path: (req.url ?? "/").split("?")[0]!,
      headers: req.headers,
    });
    if (refusal) {
      send(
        res,
        refusal.status,
        { "content-type": "application/json", ...refusal.headers },
        JSON.stringify(refusal.toBody()),
      );
      cutAfter(req, 0);
      return;
    }
    const body = await readBody(req, limit);
    if (body === undefined) {
      tooLarge(res, limit);
      cutAfter(req, 0);
      return;
    }
    let result: APIGatewayProxyResultV2 | undefined;
    try {
      result = await handler(toEvent(req, body), lambdaContext(functionName, requestTimeoutMs));
    } catch (error) {
      const safe = toHttpError(error);
      logger?.error({ err: error, path: req.url }, "handler threw");
      send(res, safe.status, { "content-type": "application/json" }, JSON.stringify(safe.toBody()));
      return;
    }
    writeResult(res, result, draining);
  }

  /** Reads the body up to `limit` bytes; undefined when it is larger (the rest is dropped, up to a cap). */
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
  function cutAfter(req: IncomingMessage, alreadyRead: number) {
    let dropped = alreadyRead;
    req.on("data", (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > DISCARD_LIMIT_BYTES) req.socket.destroy();
    });
    req.resume();
  }

  const server: Server = createServer(
    { keepAliveTimeout: options.keepAliveTimeoutMs ?? 65_000 },
    (req, res) => {
      onRequest(req, res).catch((error) => {
        logger?.error({ err: error }, "request failed in the HTTP adapter");
        if (!res.headersSent)
          send(res, 500, { "content-type": "application/json" }, JSON.stringify(toHttpError(error).toBody()));
        else res.destroy();
      });
    },
  );
  // headersTimeout must exceed keepAliveTimeout, or Node cuts idle keep-alive sockets mid-header.
  server.headersTimeout = (options.keepAliveTimeoutMs ?? 65_000) + 1_000;
  // `Expect: 100-continue`: refuse a too-large body before the client sends it.
  server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
    const limit = limitFor(req);
    if (declaredTooLarge(req, limit)) {
      tooLarge(res, limit);
      return;
    }
    res.writeContinue();
    server.emit("request", req, res);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        draining = true;
        const force = setTimeout(() => server.closeAllConnections(), drainMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        // Idle keep-alive sockets close now; busy ones after their response (connection: close).
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string) {
  if (res.headersSent) return;
  res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** API Gateway v2's result rules: a bare string or object is a 200 JSON body. */
function writeResult(res: ServerResponse, result: APIGatewayProxyResultV2 | undefined, draining: boolean) {
  // A draining server tells keep-alive clients to reconnect (to another replica).
  if (draining) res.setHeader("connection", "close");
  if (
    result === undefined ||
    typeof result === "string" ||
    typeof result !== "object" ||
    !("statusCode" in result)
  ) {
    const body = typeof result === "string" ? result : JSON.stringify(result ?? null);
    send(res, 200, { "content-type": "application/json" }, body);
    return;
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(result.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  const body =
    result.body === undefined
      ? Buffer.alloc(0)
      : result.isBase64Encoded
        ? Buffer.from(result.body, "base64")
        : Buffer.from(result.body);
  if (result.cookies?.length) res.setHeader("set-cookie", result.cookies);
  const connection = res.getHeader("connection");
  res.writeHead(result.statusCode ?? 200, {
    ...headers,
    ...(connection ? { connection: String(connection) } : {}),
    "content-length": body.length,
  });
  res.end(body);
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
