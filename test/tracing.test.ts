import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServedFunction, serveFunction } from "../functions/runtime/serve.ts";
import { provisionTenant } from "../functions/shared/provision.ts";
import { DynamoRequestStore } from "../functions/shared/stores/requests.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { flushTracing, stopTracing, tracingEnabled } from "../functions/shared/tracing.ts";
import { type Simulator, startSimulator } from "../local/sim/server.ts";
import { startReceiver } from "./helpers/delivery.ts";
import { startTestStack, type TestStack } from "./helpers/emulators.ts";
import { attrs, startOtlpReceiver } from "./helpers/otlp.ts";

/**
 * One request through the real pipeline (every function as `deepqueue serve`
 * runs it, in this process) with tracing on, exported as OTLP/HTTP JSON to a
 * receiver on loopback: one trace, from the caller's traceparent through all
 * four functions and the model call.
 */

/** In front of the simulator: records the traceparent of each model call, forwards it unchanged. */
async function startModelProxy(upstream: string) {
  const traceparents: Array<string | undefined> = [];
  const origin = new URL(upstream).origin;
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    traceparents.push(req.headers.traceparent as string | undefined);
    const answer = await fetch(`${origin}${req.url}`, {
      method: req.method ?? "GET",
      headers: { "content-type": "application/json" },
      ...(req.method === "POST" ? { body: Buffer.concat(chunks) } : {}),
    });
    res.writeHead(answer.status, { "content-type": "application/json" }).end(await answer.text());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${new URL(upstream).pathname}`,
    traceparents,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let stack: TestStack;
let sim: Simulator;
let modelProxy: Awaited<ReturnType<typeof startModelProxy>>;
let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
const served: ServedFunction[] = [];
let apiKey: string;

beforeAll(async () => {
  otlp = await startOtlpReceiver();
  stack = await startTestStack();
  sim = await startSimulator({ port: 0, host: "127.0.0.1", timeScale: 0.02 });
  modelProxy = await startModelProxy(sim.url);
  const env = {
    ...stack.env,
    INFERENCE_URL: modelProxy.url,
    DEEPQUEUE_WORKER_WAIT_SECONDS: "1",
    // Loopback callbacks are allowed in dev mode.
    DEEPQUEUE_DEV_MODE: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_SERVICE_NAME: "deepqueue-test",
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
  const tenant = await provisionTenant(
    { sqs: stack.sqs, tenants: new DynamoTenantStore(stack.ddb, stack.prefix), prefix: stack.prefix },
    { tenant: "acme", dailyRequests: null },
  );
  apiKey = tenant.api_key;
  for (const name of ["ingest", "cache", "batcher", "deliver"] as const) {
    served.push(
      await serveFunction(name, {
        env,
        port: 0,
        metricsPort: 0,
        host: "127.0.0.1",
        worker: { drainGraceMs: 2000 },
      }),
    );
  }
});

afterAll(async () => {
  await Promise.all(served.map((s) => s.stop()));
  await stopTracing();
  await modelProxy?.close();
  await sim?.stop();
  await stack?.stop();
  await otlp?.close();
});

describe("tracing with OTEL_EXPORTER_OTLP_ENDPOINT set", () => {
  it("one request with a traceparent is one trace: ingest, cache, batcher, deliver and a GenAI model span", async () => {
    expect(tracingEnabled()).toBe(true);
    const receiver = await startReceiver([200]);
    try {
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      const callerSpanId = "00f067aa0ba902b7";
      const ingest = served.find((s) => s.name === "ingest")!;
      const res = await fetch(`${ingest.url}/v1/requests`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${apiKey}`,
          "content-type": "application/json",
          traceparent: `00-${traceId}-${callerSpanId}-01`,
        },
        // temperature 0 → cacheable → through the cache function; a callback → through deliver.
        body: JSON.stringify({
          prompt: "Trace me",
          max_tokens: 8,
          temperature: 0,
          callback_url: receiver.url,
        }),
      });
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      await expect.poll(() => receiver.calls.length > 0, { timeout: 30_000 }).toBe(true);

      const byFunction = (fn: string) =>
        otlp.spans.filter((s) => attrs(s)["deepqueue.function"] === fn && s.kind !== 3);
      const model = () => otlp.spans.filter((s) => attrs(s)["gen_ai.operation.name"] !== undefined);
      await expect
        .poll(
          async () => {
            await flushTracing();
            return (
              ["ingest", "cache", "batcher", "deliver"].every((fn) => byFunction(fn).length > 0) &&
              model().length > 0
            );
          },
          { timeout: 30_000 },
        )
        .toBe(true);
      expect(otlp.contentTypes.every((t) => t.startsWith("application/json"))).toBe(true);

      const [ingestSpan] = byFunction("ingest");
      const [cacheSpan] = byFunction("cache");
      const [batcherSpan] = byFunction("batcher");
      const [deliverSpan] = byFunction("deliver");
      const [modelSpan] = model();
      const trace = otlp.spans.filter((s) => s.traceId === traceId);
      // One trace: every span of the request carries the caller's trace id.
      for (const span of [ingestSpan, cacheSpan, batcherSpan, deliverSpan, modelSpan]) {
        expect(span!.traceId).toBe(traceId);
      }
      expect(trace.length).toBe(otlp.spans.length);

      // The chain of parents follows the queues: caller → ingest → cache → batcher → model / deliver.
      expect(ingestSpan!.parentSpanId).toBe(callerSpanId);
      expect(ingestSpan!.name).toBe("POST /v1/requests");
      expect(cacheSpan!.parentSpanId).toBe(ingestSpan!.spanId);
      expect(batcherSpan!.parentSpanId).toBe(cacheSpan!.spanId);
      expect(modelSpan!.parentSpanId).toBe(batcherSpan!.spanId);
      expect(deliverSpan!.parentSpanId).toBe(batcherSpan!.spanId);
      for (const span of [ingestSpan, cacheSpan, batcherSpan, deliverSpan]) {
        expect(attrs(span!)["deepqueue.request_id"]).toBe(id);
        expect(attrs(span!)["deepqueue.tenant"]).toBe("acme");
      }
      expect(attrs(deliverSpan!)["deepqueue.outcome"]).toBe("delivered");

      // The model call follows the GenAI conventions.
      expect(modelSpan!.name).toBe("text_completion deepseek-chat");
      expect(modelSpan!.kind).toBe(3); // CLIENT
      const gen = attrs(modelSpan!);
      expect(gen).toMatchObject({
        "gen_ai.operation.name": "text_completion",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "deepseek-chat",
        "gen_ai.request.max_tokens": 8,
        "deepqueue.function": "batcher",
      });
      expect(gen["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
      expect(gen["gen_ai.usage.output_tokens"]).toBeGreaterThan(0);
      expect(gen["gen_ai.response.finish_reasons"]).toEqual([expect.stringMatching(/^(stop|length)$/)]);

      // What was sent on carries the emitting span: the model call the model span's, the record
      // ingest's, the callback deliver's.
      expect(modelProxy.traceparents).toContain(`00-${traceId}-${modelSpan!.spanId}-01`);
      const stored = await new DynamoRequestStore(stack.ddb, stack.prefix).get(id);
      expect(stored?.traceparent).toBe(`00-${traceId}-${ingestSpan!.spanId}-01`);
      const call = receiver.calls[0]!;
      expect(call.headers.traceparent).toBe(`00-${traceId}-${deliverSpan!.spanId}-01`);
      expect((JSON.parse(call.body) as { traceparent?: string }).traceparent).toBe(call.headers.traceparent);
    } finally {
      await receiver.close();
    }
  });
});
