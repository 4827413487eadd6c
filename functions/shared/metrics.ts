import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { OptionsError } from "./errors.ts";

/**
 * One prom-client registry per process and the naming scheme every function
 * uses: `deepqueue_<noun>_<unit>` with a `function` label where it helps.
 * Get-or-create helpers make metric definitions safe to evaluate twice
 * (tests, hot reload, several functions in one `dev` process).
 */
const METRIC_PREFIX = "deepqueue_";

export const registry = new Registry();

/**
 * How often the event-loop lag is sampled, in ms. prom-client's default (10 ms) wakes an idle
 * process 100 times a second: 4.2 CPU ms per second on the 2-core reference machine, per process,
 * where 100 ms costs 0.9 — for an idle worker, nearly all it spends.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Process metrics (RSS, event-loop lag…) under `deepqueue_process_*`; safe to call again (the registry knows). */
export function collectProcessMetrics(): void {
  if (registry.getSingleMetric(`${METRIC_PREFIX}process_cpu_user_seconds_total`)) return;
  collectDefaultMetrics({
    register: registry,
    prefix: `${METRIC_PREFIX}`,
    eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
  });
}

function checkName(name: string): void {
  if (!name.startsWith(METRIC_PREFIX))
    throw new OptionsError(`metric "${name}"`, ["name"], `must start with "${METRIC_PREFIX}"`);
}

/** @example const accepted = counter("deepqueue_requests_total", "Requests by outcome", ["outcome"]); */
export function counter<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  checkName(name);
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

/** @example const depth = gauge("deepqueue_in_flight_requests", "Requests being processed"); */
export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  checkName(name);
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<L>;
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/** Latency buckets in seconds, from a millisecond cache hit to a multi-minute deadline. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** @example const latency = histogram("deepqueue_accept_latency_seconds", "Accept latency"); */
export function histogram<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets: number[] = LATENCY_BUCKETS,
): Histogram<L> {
  checkName(name);
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Histogram<L>;
  return new Histogram({ name, help, labelNames, buckets, registers: [registry] });
}

/** The Prometheus text exposition of every metric in this process. */
export async function metricsText(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
