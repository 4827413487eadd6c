import { request as httpRequest } from "node:http";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";
import { type HttpServerHandle, serveHttp } from "./http.ts";

const servers: HttpServerHandle[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(
  handler: Parameters<typeof serveHttp>[0],
  options: Partial<Parameters<typeof serveHttp>[1]> = {},
) {
  const server = await serveHttp(handler, { port: 0, host: "127.0.0.1", ...options });
  servers.push(server);
  return server;
}

/** A raw request with full control over headers and how the body is written. */
function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; chunks?: Buffer[] },
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? "POST", headers: options.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }),
      );
    });
    req.on("error", reject);
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}

describe("serveHttp", () => {
  it("turns a request into a payload v2 event and the result into a response", async () => {
    let seen: APIGatewayProxyEventV2 | undefined;
    const server = await start(async (event) => {
      seen = event;
      return {
        statusCode: 201,
        headers: { "X-Thing": "yes" },
        cookies: ["a=1; Path=/"],
        body: JSON.stringify({ got: event.body }),
      };
    });
    const res = await fetch(`${server.url}/v1/things?x=1&x=2&y=3`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie: "c1=v1; c2=v2", "X-Custom": "A" },
      body: '{"hello":"world"}',
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-thing")).toBe("yes");
    expect(res.headers.get("set-cookie")).toBe("a=1; Path=/");
    expect(await res.json()).toEqual({ got: '{"hello":"world"}' });
    expect(seen).toMatchObject({
      version: "2.0",
      routeKey: "$default",
      rawPath: "/v1/things",
      rawQueryString: "x=1&x=2&y=3",
      queryStringParameters: { x: "1,2", y: "3" },
      cookies: ["c1=v1", "c2=v2"],
      isBase64Encoded: false,
      requestContext: { http: { method: "POST", path: "/v1/things", sourceIp: "127.0.0.1" } },
    });
    expect(seen?.headers["x-custom"]).toBe("A");
    expect(seen?.headers.cookie).toBeUndefined();
  });

  it("passes binary bodies base64-encoded and decodes base64 results", async () => {
    let seen: APIGatewayProxyEventV2 | undefined;
    const server = await start(async (event) => {
      seen = event;
      return { statusCode: 200, isBase64Encoded: true, body: Buffer.from([0, 1, 2, 255]).toString("base64") };
    });
    const res = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: Buffer.from([9, 8, 7]),
    });
    expect(seen?.isBase64Encoded).toBe(true);
    expect(Buffer.from(seen?.body ?? "", "base64")).toEqual(Buffer.from([9, 8, 7]));
    expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it("answers a handler that throws with a 500 error body, without its message or stack", async () => {
    const server = await start(async () => {
      throw new Error("secret database password in message");
    });
    const res = await fetch(`${server.url}/x`);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: "internal_error", message: "internal error" } });
    expect(text).not.toContain("secret");
  });

  it("refuses a body over the limit by Content-Length with 413, before calling the handler", async () => {
    let calls = 0;
    const server = await start(
      async () => {
        calls += 1;
        return { statusCode: 200, body: "ok" };
      },
      { bodyLimitBytes: 1024 },
    );
    const res = await fetch(server.url, { method: "POST", body: "x".repeat(1025) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    expect(calls).toBe(0);
    // At the limit is fine.
    const ok = await fetch(server.url, { method: "POST", body: "x".repeat(1024) });
    expect(ok.status).toBe(200);
  });

  it("gives each route its own request time when asked (a chat completion waits on the line)", async () => {
    const server = await start(
      async (_event, context) => ({ statusCode: 200, body: String(context.getRemainingTimeInMillis()) }),
      { requestTimeoutMs: ({ path }) => (path === "/slow" ? 135_000 : 30_000) },
    );
    const slow = Number(await (await fetch(`${server.url}/slow`)).text());
    const quick = Number(await (await fetch(`${server.url}/quick`)).text());
    expect(slow).toBeGreaterThan(130_000);
    expect(quick).toBeLessThanOrEqual(30_000);
    expect(quick).toBeGreaterThan(25_000);
  });

  it("refuses a streamed (chunked) body as soon as it passes the limit", async () => {
    let calls = 0;
    const server = await start(
      async () => {
        calls += 1;
        return { statusCode: 200, body: "ok" };
      },
      { bodyLimitBytes: 256 * 1024 },
    );
    const chunk = Buffer.alloc(16 * 1024, 120);
    const res = await rawRequest(server.url, {
      headers: { "transfer-encoding": "chunked", "content-type": "application/json" },
      chunks: Array.from({ length: 20 }, () => chunk), // 320 KiB, no Content-Length
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe("payload_too_large");
    expect(calls).toBe(0);
  });

  it("refuses an oversized Expect: 100-continue upload without reading the body", async () => {
    const server = await start(async () => ({ statusCode: 200, body: "ok" }), { bodyLimitBytes: 1024 });
    const res = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(server.url, {
        method: "POST",
        headers: { expect: "100-continue", "content-length": 5_000_000 },
      });
      req.on("continue", () => reject(new Error("server asked for the body")));
      req.on("response", (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
        req.destroy();
      });
      req.on("error", () => {});
      req.flushHeaders();
    });
    expect(res).toBe(413);
  });

  it("keeps connections alive between requests", async () => {
    const ports = new Set<number>();
    const server = await start(async (event) => ({
      statusCode: 200,
      body: event.requestContext.http.sourceIp,
    }));
    const { Agent } = await import("node:http");
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i += 1) {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(server.url, { agent }, (res) => {
          ports.add(res.socket.localPort ?? -1);
          res.resume();
          res.on("end", () => resolve());
        });
        req.on("error", reject);
        req.end();
      });
    }
    agent.destroy();
    expect(ports.size).toBe(1);
  });

  it("drains on close: the in-flight request finishes, new connections are refused", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started: () => void = () => {};
    const inHandler = new Promise<void>((resolve) => {
      started = resolve;
    });
    const server = await serveHttp(
      async () => {
        started();
        await gate;
        return { statusCode: 200, body: "finished" };
      },
      { port: 0, host: "127.0.0.1", drainMs: 5_000 },
    );
    const inflight = fetch(`${server.url}/slow`);
    await inHandler;
    const closed = server.close();
    await expect(fetch(`${server.url}/new`)).rejects.toThrow();
    release();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.headers.get("connection")).toBe("close");
    expect(await res.text()).toBe("finished");
    await closed;
  });

  it("streams a body chunk by chunk: the first chunk arrives before the stream ends", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const server = await start(async () => ({
      statusCode: 200,
      headers: { "content-type": "text/event-stream" },
      body: new ReadableStream<string>({
        async start(controller) {
          controller.enqueue("data: one\n\n");
          await gate;
          controller.enqueue("data: two\n\n");
          controller.close();
        },
      }),
    }));
    const res = await fetch(`${server.url}/stream`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("content-length")).toBeNull();
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    // The second chunk is held back until the first has reached the client.
    expect(decoder.decode((await reader.read()).value)).toBe("data: one\n\n");
    release();
    let rest = "";
    for (let part = await reader.read(); !part.done; part = await reader.read())
      rest += decoder.decode(part.value);
    expect(rest).toBe("data: two\n\n");
  });

  it("streams an async iterable (a Node Readable or a generator) as well", async () => {
    const server = await start(async () => ({
      statusCode: 201,
      body: (async function* () {
        yield "a";
        yield Buffer.from("b");
      })(),
    }));
    const res = await fetch(`${server.url}/gen`);
    expect(res.status).toBe(201);
    expect(await res.text()).toBe("ab");
  });

  it("honours back-pressure: a stream larger than the socket's buffers arrives whole", async () => {
    const chunk = "x".repeat(64 * 1024);
    const server = await start(async () => ({
      statusCode: 200,
      body: (async function* () {
        for (let i = 0; i < 160; i++) yield chunk;
      })(),
    }));
    const res = await fetch(`${server.url}/big`);
    expect((await res.text()).length).toBe(160 * chunk.length);
  });

  it("cancels the stream when the client goes away", async () => {
    let cancelled: (reason: unknown) => void = () => {};
    const cancel = new Promise<unknown>((resolve) => {
      cancelled = resolve;
    });
    const server = await start(async () => ({
      statusCode: 200,
      body: new ReadableStream<string>({
        start(controller) {
          controller.enqueue("first");
        },
        // Never produces more: only the client's going away ends it.
        pull: () => new Promise(() => {}),
        cancel: (reason) => cancelled(reason ?? "cancelled"),
      }),
    }));
    const abort = new AbortController();
    const res = await fetch(`${server.url}/forever`, { signal: abort.signal });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("first");
    abort.abort();
    await expect(cancel).resolves.toBeDefined();
  });
});
