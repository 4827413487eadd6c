import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attrs, startOtlpReceiver } from "../../test/helpers/otlp.ts";
import { RetryLaterError } from "./sqs-records.ts";
import {
  endModelSpan,
  endSpan,
  flushTracing,
  spanTraceparent,
  startConsumerSpan,
  startModelSpan,
  startTracing,
  stopTracing,
} from "./tracing.ts";

/** The real OpenTelemetry SDK, exporting OTLP/HTTP JSON to a receiver on loopback. */
let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;

beforeAll(async () => {
  otlp = await startOtlpReceiver();
  const started = await startTracing(
    { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" },
    { serviceName: "deepqueue-batcher" },
  );
  expect(started).toBe(true);
});

afterAll(async () => {
  await stopTracing();
  await otlp?.close();
});

async function exported(spanIds: string[]) {
  await flushTracing();
  return spanIds.map((id) => otlp.spans.find((s) => s.spanId === id)!);
}

const traceparent = (n: number) => `00-${String(n).repeat(32)}-${String(n).repeat(16)}-01`;

describe("spans with the SDK on", () => {
  it("a batched completions call is one span linking every request it served, each linking back", async () => {
    const requests = [1, 2, 3].map((n) =>
      startConsumerSpan("batcher", "deepqueue-inference", `m${n}`, traceparent(n), {
        id: `req_${n}`,
        tenant: "acme",
      }),
    );
    const model = startModelSpan({
      operation: "text_completion",
      model: "deepseek-chat",
      baseUrl: "http://vllm:8000/v1",
      maxTokens: 64,
      temperature: 0,
      served: requests,
    });
    endModelSpan(model, {
      id: "cmpl-1",
      model: "deepseek-chat",
      finishReasons: ["stop", "length", "stop"],
      inputTokens: 30,
      outputTokens: 90,
    });
    for (const span of requests) endSpan(span);

    const [modelSpan, ...requestSpans] = await exported([
      model!.spanContext().spanId,
      ...requests.map((s) => s!.spanContext().spanId),
    ]);
    // A trace of its own (it belongs to no one request), linked to all three.
    expect(modelSpan!.parentSpanId ?? "").toBe("");
    expect([1, 2, 3].map((n) => String(n).repeat(32))).not.toContain(modelSpan!.traceId);
    expect(modelSpan!.links?.map((l) => l.spanId).sort()).toEqual(requestSpans.map((s) => s!.spanId).sort());
    for (const [i, span] of requestSpans.entries()) {
      expect(span!.traceId).toBe(String(i + 1).repeat(32));
      expect(span!.parentSpanId).toBe(String(i + 1).repeat(16));
      expect(span!.links?.map((l) => l.spanId)).toEqual([modelSpan!.spanId]);
    }
    expect(attrs(modelSpan!)).toMatchObject({
      "gen_ai.operation.name": "text_completion",
      "gen_ai.system": "openai",
      "gen_ai.request.model": "deepseek-chat",
      "gen_ai.request.max_tokens": 64,
      "gen_ai.request.temperature": 0,
      "gen_ai.response.id": "cmpl-1",
      "gen_ai.response.finish_reasons": ["stop", "length", "stop"],
      "gen_ai.usage.input_tokens": 30,
      "gen_ai.usage.output_tokens": 90,
      "server.address": "vllm",
      "server.port": 8000,
      "deepqueue.batch_size": 3,
    });
    // service.name from the function when OTEL_SERVICE_NAME names none.
    expect(otlp.services.get(modelSpan!.spanId)).toBe("deepqueue-batcher");
  });

  it("an unsampled caller stays unsampled downstream, and a failure is an error span", async () => {
    const unsampled = startConsumerSpan(
      "cache",
      "deepqueue-requests",
      "m",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    );
    expect(unsampled!.isRecording()).toBe(false);
    expect(spanTraceparent(unsampled)).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
    endSpan(unsampled);

    const failing = startConsumerSpan("deliver", "deepqueue-delivery", "m", traceparent(4));
    endSpan(failing, new Error("receiver unreachable"));
    const waiting = startConsumerSpan("cache", "deepqueue-requests", "m", traceparent(5));
    endSpan(waiting, new RetryLaterError("coalesced with req_1"));
    const [span, waited] = await exported([failing!.spanContext().spanId, waiting!.spanContext().spanId]);
    expect(span!.status?.code).toBe(2);
    expect(attrs(span!)["error.type"]).toBe("Error");
    // Sent back to the queue on purpose: an outcome, not an error.
    expect(waited!.status?.code ?? 0).toBe(0);
    expect(attrs(waited!)).toMatchObject({ "deepqueue.outcome": "retry_later" });
    expect(otlp.spans.find((s) => s.spanId === unsampled!.spanContext().spanId)).toBeUndefined();
  });
});
