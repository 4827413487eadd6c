import { Agent, request as httpRequest } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { BenchError } from "./errors.ts";

/**
 * Load generation for the scenarios: a keep-alive HTTP client and two load
 * shapes. Closed loop (`concurrency` users, each starting its next request
 * when the previous one ends) measures capacity; open loop (requests start on
 * a fixed schedule whatever happens) measures what an offered load gets,
 * which is how producers behave. Every run is bounded in count and time and
 * targets 127.0.0.1 only.
 */

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Milliseconds from the request's start to the end of the body. */
  ms: number;
}

export interface HttpClient {
  request(
    url: string,
    options?: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number },
  ): Promise<HttpAnswer>;
  close(): void;
}

/** Status used for a request that never got an HTTP answer (refused, reset, timed out locally). */
export const NO_ANSWER = 0;

function checkLoopback(url: URL): void {
  if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost") {
    throw new BenchError(`bench load targets 127.0.0.1 only, not ${url.hostname}`);
  }
}

/** @example const http = createHttpClient(64); const a = await http.request(`${url}/healthz`); http.close(); */
export function createHttpClient(maxSockets = 256): HttpClient {
  const agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  return {
    request(url, options = {}) {
      const target = new URL(url);
      checkLoopback(target);
      const started = performance.now();
      return new Promise((resolve) => {
        const req = httpRequest(
          target,
          {
            agent,
            method: options.method ?? "GET",
            headers: {
              ...(options.body !== undefined
                ? { "content-type": "application/json", "content-length": Buffer.byteLength(options.body) }
                : {}),
              ...options.headers,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? NO_ANSWER,
                headers: res.headers,
                body: Buffer.concat(chunks).toString("utf8"),
                ms: performance.now() - started,
              }),
            );
            res.on("error", () =>
              resolve({ status: NO_ANSWER, headers: {}, body: "", ms: performance.now() - started }),
            );
          },
        );
        if (options.timeoutMs) {
          req.setTimeout(options.timeoutMs, () => req.destroy(new BenchError("timeout")));
        }
        req.on("error", (error) =>
          resolve({ status: NO_ANSWER, headers: {}, body: error.message, ms: performance.now() - started }),
        );
        if (options.body !== undefined) req.end(options.body);
        else req.end();
      });
    },
    close() {
      agent.destroy();
    },
  };
}

export interface ClosedLoopOptions<T> {
  concurrency: number;
  /** Stop starting new work after this many tasks… */
  total?: number;
  /** …or after this many milliseconds, whichever comes first. */
  durationMs?: number;
  /**
   * Start the users evenly over this many milliseconds rather than all at once (a ramp-up, as load
   * tools have): user k of n starts at k × rampMs ÷ n. @default 0
   */
  rampMs?: number;
  task(index: number): Promise<T>;
  onDone?(result: T): void;
}

export interface LoadRun<T> {
  results: T[];
  /** Wall time from the first start to the last end. */
  elapsedMs: number;
}

/**
 * `concurrency` users run `task` back to back until `total` tasks have started
 * or `durationMs` has passed; resolves when every started task has ended.
 *
 * @example const run = await closedLoop({ concurrency: 8, total: 100, task: (i) => http.request(url) });
 */
export async function closedLoop<T>(options: ClosedLoopOptions<T>): Promise<LoadRun<T>> {
  if (options.total === undefined && options.durationMs === undefined) {
    throw new BenchError("closedLoop needs total or durationMs, so it stops by itself");
  }
  const started = performance.now();
  const results: T[] = [];
  let next = 0;
  const more = () =>
    (options.total === undefined || next < options.total) &&
    (options.durationMs === undefined || performance.now() - started < options.durationMs);
  const rampMs = options.rampMs ?? 0;
  const user = async (_: unknown, k: number) => {
    if (rampMs > 0 && k > 0) await sleep((k * rampMs) / options.concurrency);
    while (more()) {
      const index = next++;
      const result = await options.task(index);
      results.push(result);
      options.onDone?.(result);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, user));
  return { results, elapsedMs: performance.now() - started };
}

export interface OpenLoopOptions<T> {
  /** Arrivals per second, evenly spaced. */
  ratePerSecond: number;
  /** How many arrivals in all. */
  total: number;
  task(index: number): Promise<T>;
  onDone?(result: T): void;
}

/**
 * Starts `total` tasks at `ratePerSecond`, whatever the earlier ones are doing
 * (an offered load), and waits for all of them.
 *
 * @example await openLoop({ ratePerSecond: 20, total: 200, task: (i) => submit(i) });
 */
export async function openLoop<T>(options: OpenLoopOptions<T>): Promise<LoadRun<T>> {
  const started = performance.now();
  const interval = 1000 / options.ratePerSecond;
  const pending: Array<Promise<void>> = [];
  const results: T[] = [];
  for (let i = 0; i < options.total; i++) {
    const due = started + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(
      options.task(i).then((result) => {
        results.push(result);
        options.onDone?.(result);
      }),
    );
  }
  await Promise.all(pending);
  return { results, elapsedMs: performance.now() - started };
}
