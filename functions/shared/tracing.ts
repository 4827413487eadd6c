import { setTimeout as sleep } from "node:timers/promises";
import {
  type Attributes,
  isSpanContextValid,
  type Link,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { childTraceparent } from "./ids.ts";
import { RetryLaterError } from "./sqs-records.ts";

/**
 * OpenTelemetry tracing (docs/api.md#tracing), off unless the standard `OTEL_*`
 * variables turn it on. Off, nothing of the SDK is loaded and every helper
 * here returns at its first line: the hot path pays one boolean test. On,
 * `startTracing` loads the official Node SDK (`@opentelemetry/sdk-node`, which
 * reads every `OTEL_*` variable itself: exporter, protocol, sampler, resource)
 * once per process, and the functions emit spans through `@opentelemetry/api`.
 *
 * A request's trace context travels in W3C `traceparent` form: the HTTP header
 * into ingest, then the `traceparent` of every event on every queue. Each
 * function starts its span as a child of the traceparent it received and puts
 * its own span's traceparent on what it sends on, so the whole journey is one
 * trace.
 */

/** `deepqueue.*` span attributes (our own namespace, as the conventions ask). */
export const ATTR = {
  function: "deepqueue.function",
  requestId: "deepqueue.request_id",
  tenant: "deepqueue.tenant",
  outcome: "deepqueue.outcome",
  batchSize: "deepqueue.batch_size",
} as const;

export type FunctionName = "ingest" | "cache" | "batcher" | "deliver";

const INSTRUMENTATION_SCOPE = "deepqueue";

let enabled = false;
let starting: Promise<boolean> | undefined;
let tracer: Tracer | undefined;
let sdk: { shutdown(): Promise<void> } | undefined;

/** True once `startTracing` has started the SDK in this process. */
export function tracingEnabled(): boolean {
  return enabled;
}

/**
 * Whether `env` asks for traces: an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`
 * or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or an explicit `OTEL_TRACES_EXPORTER`
 * other than `none`, and `OTEL_SDK_DISABLED` not `true`.
 */
export function tracingRequested(env: Record<string, string | undefined>): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  const exporters = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (exporters?.split(",").every((e) => e.trim() === "none")) return false;
  return Boolean(
    env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || exporters,
  );
}

export interface StartTracingOptions {
  /** `service.name` when `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) names none, e.g. "deepqueue-batcher". */
  serviceName?: string;
}

/**
 * Starts the OpenTelemetry SDK when `env` asks for it (see `tracingRequested`);
 * otherwise does nothing and imports nothing. Once per process: later calls
 * return the first one's answer. The SDK reads its settings from
 * `process.env`, so `OTEL_*` entries of an `env` object other than
 * `process.env` (tests, in-process dev runs) are copied there first.
 *
 * @example if (await startTracing(process.env, { serviceName: "deepqueue-batcher" })) logger.info("tracing on");
 */
export function startTracing(
  env: Record<string, string | undefined> = process.env,
  options: StartTracingOptions = {},
): Promise<boolean> {
  if (starting) return starting;
  if (!tracingRequested(env)) return Promise.resolve(false);
  starting = (async () => {
    if (env !== process.env) {
      for (const [key, value] of Object.entries(env)) {
        if (key.startsWith("OTEL_") && value !== undefined) process.env[key] = value;
      }
    }
    const { NodeSDK } = await import("@opentelemetry/sdk-node");
    const named = env.OTEL_SERVICE_NAME || /(^|,)\s*service\.name=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? "");
    const instance = new NodeSDK({
      ...(options.serviceName && !named ? { serviceName: options.serviceName } : {}),
      // Metrics stay on Prometheus (/metrics) and logs on stdout: traces only.
      metricReaders: [],
      logRecordProcessors: [],
    });
    instance.start();
    sdk = instance;
    tracer = trace.getTracer(INSTRUMENTATION_SCOPE);
    enabled = true;
    return true;
  })();
  return starting;
}

/** How long a flush may hold a stopping function up: an unreachable collector must not eat the drain. */
const FLUSH_TIMEOUT_MS = 5_000;

/** Exports every finished span now (before a test asserts, or a process exits), waiting at most `timeoutMs`. */
export async function flushTracing(timeoutMs = FLUSH_TIMEOUT_MS): Promise<void> {
  if (!enabled) return;
  const provider = trace.getTracerProvider();
  const delegate = provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider;
  const flush = (delegate as { forceFlush?: () => Promise<void> }).forceFlush?.();
  if (!flush) return;
  const done = new AbortController();
  await Promise.race([
    flush.catch(() => undefined),
    sleep(timeoutMs, undefined, { signal: done.signal }).catch(() => undefined),
  ]).finally(() => done.abort());
}

/** Flushes and stops the SDK; spans started afterwards are dropped. */
export async function stopTracing(): Promise<void> {
  if (!enabled) return;
  enabled = false;
  await sdk?.shutdown();
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/** The remote span context a W3C `traceparent` names, or undefined when absent or malformed. */
export function parseTraceparent(traceparent: string | undefined): SpanContext | undefined {
  const match = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  // Version ff is invalid; a future version may append fields (https://www.w3.org/TR/trace-context/#versioning-of-traceparent).
  if (!match || match[1] === "ff" || (match[1] === "00" && traceparent!.trim().length !== 55))
    return undefined;
  const context: SpanContext = {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16) & 1,
    isRemote: true,
  };
  return isSpanContextValid(context) ? context : undefined;
}

/** A span context as a W3C `traceparent`. */
export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-0${context.traceFlags & 1}`;
}

export interface SpanStart {
  /** The W3C traceparent the span continues (a header, an event's `traceparent`); a new trace when absent. */
  parent?: string | undefined;
  /** Or a span of this process as the parent. */
  parentSpan?: Span | undefined;
  kind?: SpanKind;
  attributes?: Attributes;
  links?: Link[];
}

/**
 * Starts a span, or returns undefined (at no cost) when tracing is off.
 *
 * @example const span = startSpan("process deepqueue-requests", { parent: event.traceparent, kind: SpanKind.CONSUMER });
 */
export function startSpan(name: string, start: SpanStart = {}): Span | undefined {
  if (!enabled || !tracer) return undefined;
  const parentContext = start.parentSpan?.spanContext() ?? parseTraceparent(start.parent);
  const context = parentContext ? trace.setSpanContext(ROOT_CONTEXT, parentContext) : ROOT_CONTEXT;
  return tracer.startSpan(
    name,
    {
      kind: start.kind ?? SpanKind.INTERNAL,
      ...(start.attributes ? { attributes: start.attributes } : {}),
      ...(start.links?.length ? { links: start.links } : {}),
      // Never the ambient context: the parent is always the one the message or header names.
      root: !parentContext,
    },
    context,
  );
}

/**
 * The traceparent to send on from inside `span`: the span's own context. With
 * tracing off (no span), a child of `received` as before (same trace id, a new
 * span id), so events keep carrying a trace context either way.
 */
export function traceparentOf(span: Span | undefined, received?: string): string {
  return span ? formatTraceparent(span.spanContext()) : childTraceparent(received);
}

/** `span`'s traceparent, or undefined with tracing off (callers then keep what they had). */
export function spanTraceparent(span: Span | undefined): string | undefined {
  return span ? formatTraceparent(span.spanContext()) : undefined;
}

/**
 * Ends `span`: with an error status and the exception when `error` is given. A
 * RetryLaterError (the message goes back to the queue on purpose: a wait, a
 * back-off) is an outcome, `retry_later`, not an error.
 */
export function endSpan(span: Span | undefined, error?: unknown, attributes?: Attributes): void {
  if (!span) return;
  if (attributes) span.setAttributes(attributes);
  if (error instanceof RetryLaterError) {
    span.setAttributes({ [ATTR.outcome]: "retry_later", "deepqueue.retry_reason": error.message });
  } else if (error !== undefined) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
    span.setAttribute("error.type", (error as { name?: string })?.name ?? "Error");
  }
  span.end();
}

/** The span attributes every function span carries. */
function functionAttributes(
  fn: FunctionName,
  request?: { id: string; tenant: string } | undefined,
): Attributes {
  return request
    ? { [ATTR.function]: fn, [ATTR.requestId]: request.id, [ATTR.tenant]: request.tenant }
    : { [ATTR.function]: fn };
}

// ---------------------------------------------------------------- model calls (GenAI conventions)

/**
 * A model call as the OpenTelemetry GenAI semantic conventions describe it
 * (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/).
 */
export interface ModelCall {
  operation: "chat" | "text_completion";
  model: string;
  /** The OpenAI-compatible base URL the call goes to. */
  baseUrl?: string | undefined;
  maxTokens?: number | undefined;
  temperature?: number | undefined;
  /** The request spans this call serves: the parent when there is one, links when a batch serves several. */
  served: Array<Span | undefined>;
}

export interface ModelResponse {
  id?: string | undefined;
  model?: string | undefined;
  finishReasons: string[];
  inputTokens: number;
  outputTokens: number;
}

/**
 * `gen_ai.provider.name` (and the older `gen_ai.system`) for a base URL:
 * "deepseek" for the DeepSeek API, "openai" for any other OpenAI-compatible
 * server (vLLM, SGLang, the simulator), as the conventions ask of an
 * instrumentation that speaks the OpenAI API.
 */
export function genAiProvider(baseUrl: string | undefined): string {
  try {
    const host = baseUrl ? new URL(baseUrl).hostname : "";
    return host === "deepseek.com" || host.endsWith(".deepseek.com") ? "deepseek" : "openai";
  } catch {
    return "openai";
  }
}

/**
 * Starts the span of one model call, named `{operation} {model}` (kind CLIENT).
 * Serving one request it is that request's child; serving a batch (one
 * completions call for several prompts) it is a trace of its own that links
 * every request's span, and each request's span links back to it.
 */
export function startModelSpan(call: ModelCall): Span | undefined {
  if (!enabled) return undefined;
  const served = call.served.filter((s): s is Span => s !== undefined);
  const provider = genAiProvider(call.baseUrl);
  const attributes: Attributes = {
    [ATTR.function]: "batcher",
    "gen_ai.operation.name": call.operation,
    "gen_ai.provider.name": provider,
    "gen_ai.system": provider,
    "gen_ai.request.model": call.model,
    [ATTR.batchSize]: call.served.length,
  };
  if (call.maxTokens !== undefined) attributes["gen_ai.request.max_tokens"] = call.maxTokens;
  if (call.temperature !== undefined) attributes["gen_ai.request.temperature"] = call.temperature;
  if (call.baseUrl) {
    try {
      const url = new URL(call.baseUrl);
      attributes["server.address"] = url.hostname;
      attributes["server.port"] = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
    } catch {
      // A base URL the client accepted always parses; nothing to add otherwise.
    }
  }
  const batch = call.served.length > 1;
  const span = startSpan(`${call.operation} ${call.model}`, {
    kind: SpanKind.CLIENT,
    attributes,
    ...(batch
      ? { links: served.map((s) => ({ context: s.spanContext() })) }
      : served[0]
        ? { parentSpan: served[0] }
        : {}),
  });
  if (batch && span) for (const s of served) s.addLink({ context: span.spanContext() });
  return span;
}

/** Ends a model span with what the server answered. */
export function endModelSpan(span: Span | undefined, response: ModelResponse): void {
  if (!span) return;
  span.setAttributes({
    "gen_ai.response.finish_reasons": response.finishReasons,
    "gen_ai.usage.input_tokens": response.inputTokens,
    "gen_ai.usage.output_tokens": response.outputTokens,
    ...(response.id ? { "gen_ai.response.id": response.id } : {}),
    ...(response.model ? { "gen_ai.response.model": response.model } : {}),
  });
  span.end();
}

export type { Span };
export { SpanKind, SpanStatusCode };

/**
 * Runs `work` inside `span` and ends it: a string result becomes the
 * `deepqueue.outcome` attribute, a throw the span's error. Without a span
 * (tracing off) it is just `work()`.
 */
export async function traced<T>(span: Span | undefined, work: () => Promise<T>): Promise<T> {
  if (!span) return work();
  try {
    const value = await work();
    endSpan(span, undefined, typeof value === "string" ? { [ATTR.outcome]: value } : undefined);
    return value;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}

/**
 * Starts the span of one queue message's processing (the messaging
 * conventions' `process {queue}`, kind CONSUMER), continuing the event's
 * traceparent; undefined with tracing off.
 */
export function startConsumerSpan(
  fn: Exclude<FunctionName, "ingest">,
  queue: string,
  messageId: string | undefined,
  traceparent: string | undefined,
  request?: { id: string; tenant: string },
): Span | undefined {
  if (!enabled) return undefined;
  return startSpan(`process ${queue}`, {
    parent: traceparent,
    kind: SpanKind.CONSUMER,
    attributes: {
      ...functionAttributes(fn, request),
      "messaging.system": "aws_sqs",
      "messaging.operation.type": "process",
      "messaging.destination.name": queue,
      ...(messageId ? { "messaging.message.id": messageId } : {}),
    },
  });
}
