import { describe, expect, it, vi } from "vitest";
import {
  formatTraceparent,
  genAiProvider,
  parseTraceparent,
  startConsumerSpan,
  startModelSpan,
  startSpan,
  startTracing,
  traceparentOf,
  tracingEnabled,
  tracingRequested,
} from "./tracing.ts";

/**
 * Tracing off: nothing of the SDK is loaded. The SDK module is replaced by a
 * stand-in that records being imported, so "not even imported" is checked,
 * not assumed. (The real SDK's spans: tracing-sdk.test.ts.)
 */
const sdk = vi.hoisted(() => ({ imported: 0, started: 0, options: [] as unknown[] }));
vi.mock("@opentelemetry/sdk-node", () => {
  sdk.imported += 1;
  return {
    NodeSDK: class {
      constructor(options: unknown) {
        sdk.options.push(options);
      }
      start() {
        sdk.started += 1;
      }
      async shutdown() {}
    },
  };
});

const CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("tracingRequested", () => {
  it.each([
    [{}, false],
    [
      { OTEL_SERVICE_NAME: "x", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_TRACES_SAMPLER: "always_on" },
      false,
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "" }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" }, true],
    [{ OTEL_TRACES_EXPORTER: "console" }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "TRUE" }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "false" }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_TRACES_EXPORTER: "none" }, false],
  ] as Array<[Record<string, string>, boolean]>)("%o → %s", (env, expected) => {
    expect(tracingRequested(env)).toBe(expected);
  });
});

describe("with no OTEL variables", () => {
  it("starts nothing, imports no SDK, and every helper is a no-op", async () => {
    expect(await startTracing({ PATH: "/usr/bin" }, { serviceName: "deepqueue-batcher" })).toBe(false);
    expect(
      await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }),
    ).toBe(false);
    expect(sdk.imported).toBe(0);
    expect(tracingEnabled()).toBe(false);
    expect(startSpan("POST /v1/requests", { parent: CALLER })).toBeUndefined();
    expect(startConsumerSpan("cache", "deepqueue-requests", "m1", CALLER)).toBeUndefined();
    expect(
      startModelSpan({ operation: "chat", model: "deepseek-chat", served: [undefined] }),
    ).toBeUndefined();
    // Events still carry a trace context: a child of the one received (same trace, new span id).
    const sent = traceparentOf(undefined, CALLER);
    expect(sent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(sent).not.toBe(CALLER);
  });
});

describe("with OTEL_EXPORTER_OTLP_ENDPOINT set", () => {
  it("starts the SDK once per process, with metrics and logs left out (Prometheus stays)", async () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };
    expect(await startTracing(env, { serviceName: "deepqueue-cache" })).toBe(true);
    expect(await startTracing(env, { serviceName: "deepqueue-batcher" })).toBe(true);
    expect(sdk.imported).toBe(1);
    expect(sdk.started).toBe(1);
    expect(sdk.options).toEqual([
      { serviceName: "deepqueue-cache", metricReaders: [], logRecordProcessors: [] },
    ]);
    expect(tracingEnabled()).toBe(true);
    expect(process.env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe("http://collector:4318");
  });
});

describe("traceparent", () => {
  it("parses and formats W3C trace context", () => {
    const context = parseTraceparent(CALLER);
    expect(context).toEqual({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
      isRemote: true,
    });
    expect(formatTraceparent(context!)).toBe(CALLER);
    expect(parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.traceFlags).toBe(0);
    // A later version may append fields; its first four are read.
    expect(parseTraceparent(`01-${CALLER.slice(3)}-extra`)?.spanId).toBe("00f067aa0ba902b7");
  });

  it.each([
    undefined,
    "",
    "garbage",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    `${CALLER}-extra`,
  ])("refuses %o", (traceparent) => {
    expect(parseTraceparent(traceparent)).toBeUndefined();
  });
});

describe("genAiProvider", () => {
  it.each([
    ["https://api.deepseek.com", "deepseek"],
    ["https://api.deepseek.com/v1", "deepseek"],
    ["http://vllm.deepqueue.svc:8000/v1", "openai"],
    ["http://127.0.0.1:8000/v1", "openai"],
    [undefined, "openai"],
    ["not a url", "openai"],
  ])("%s → %s", (url, provider) => {
    expect(genAiProvider(url)).toBe(provider);
  });
});
