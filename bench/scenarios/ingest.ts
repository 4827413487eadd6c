import { type IngestBenchResult, runIngestBench } from "../ingest.ts";
import type { Scenario } from "../scenario.ts";
import { round } from "../stats.ts";
import { lineChart } from "../svg.ts";

/**
 * Scenario 1 reuses the ingest benchmark (bench/ingest.ts, runIngestBench):
 * autocannon against ingest and against the floor, each its own process on
 * its own emulators, once per concurrency.
 */
export const ingestScenario: Scenario = {
  id: "ingest",
  number: 1,
  title: "Ingest: accepting a request vs the floor",
  question:
    "Accepted requests per second and p50/p99 time to 202 at a few concurrencies, against the floor: a bare handler behind the same HTTP adapter that only sends one SQS message.",
  async run(ctx) {
    const { settings } = ctx;
    const bar = ctx.progress("1 ingest", settings.ingestConcurrencies.length);
    const runs: IngestBenchResult[] = [];
    for (const connections of settings.ingestConcurrencies) {
      bar.label(`${connections} connections`);
      runs.push(await runIngestBench({ durationSeconds: settings.ingestSecondsPerPoint, connections }));
      bar.tick();
    }
    bar.done();
    const best = runs.reduce((a, b) => (b.ingest.requestsPerSecond > a.ingest.requestsPerSecond ? b : a));
    const bestFloor = runs.reduce((a, b) => (b.floor.requestsPerSecond > a.floor.requestsPerSecond ? b : a));
    const ratio = round(best.ingest.requestsPerSecond / bestFloor.floor.requestsPerSecond);
    const low = runs[0]!;
    const chart = ctx.chart(
      "ingest",
      lineChart({
        title: "Accepted requests per second: ingest vs the floor",
        xLabel: "concurrent connections",
        yLabel: "202 Accepted / s",
        xLog: true,
        series: [
          {
            name: "ingest (auth, validation, quota, record, send)",
            points: runs.map((r) => [r.connections, r.ingest.requestsPerSecond]),
          },
          {
            name: "floor (one SQS send)",
            points: runs.map((r) => [r.connections, r.floor.requestsPerSecond]),
          },
        ],
      }),
    );
    return {
      status: "ok" as const,
      headline: [
        `ingest accepts **${round(best.ingest.requestsPerSecond)} req/s** (${best.connections} connections) = **${ratio}×** the floor's best ${round(bestFloor.floor.requestsPerSecond)} req/s; p50 accept ${low.ingest.p50Ms} ms vs the floor's ${low.floor.p50Ms} ms at ${low.connections} connection(s); ${low.ingest.cpuMsPerRequest} vs ${low.floor.cpuMsPerRequest} CPU ms per request`,
      ],
      tables: [
        {
          title: `autocannon, ${settings.ingestSecondsPerPoint} s per point after a 1 s warm-up`,
          columns: [
            "connections",
            "ingest 202/s",
            "ingest p50 ms",
            "ingest p99 ms",
            "floor 202/s",
            "floor p50 ms",
            "floor p99 ms",
            "ingest/floor req/s",
            "ingest/floor CPU per request",
            "non-2xx + errors",
          ],
          rows: runs.map((r) => [
            r.connections,
            round(r.ingest.requestsPerSecond),
            r.ingest.p50Ms,
            r.ingest.p99Ms,
            round(r.floor.requestsPerSecond),
            r.floor.p50Ms,
            r.floor.p99Ms,
            r.ratio.throughput,
            r.ratio.cpuPerRequest,
            r.ingest.non2xx + r.ingest.errors + r.floor.non2xx + r.floor.errors,
          ]),
        },
      ],
      charts: [chart],
      notes: [
        "Measured by bench/ingest.ts (runIngestBench): ingest and the floor each run as their own process behind the same serveHttp adapter, against emulators in the bench process; CPU per request is the target process's own CPU time.",
        ...(runs[0]?.notes ?? []),
      ],
      data: { runs, ratio },
    };
  },
};
