import { closedLoop, NO_ANSWER, openLoop } from "../load.ts";
import type { Answered } from "../pipeline.ts";
import { type BenchContext, promptFor, type Scenario, type Table } from "../scenario.ts";
import { cdf, round, summarize } from "../stats.ts";
import { lineChart } from "../svg.ts";
import { startSyncGateway } from "../sync-gateway.ts";
import { type SweepPoint, sweepPoint } from "./throughput.ts";

interface Outcome {
  answered: number;
  refused: number;
  timedOut: number;
  failed: number;
  latencies: number[];
}

function tally(items: Array<{ kind: "answered" | "refused" | "timedOut" | "failed"; ms?: number }>): Outcome {
  const out: Outcome = { answered: 0, refused: 0, timedOut: 0, failed: 0, latencies: [] };
  for (const item of items) {
    out[item.kind] += 1;
    if (item.kind === "answered") out.latencies.push(item.ms!);
  }
  return out;
}

export const sourceDesignScenario: Scenario = {
  id: "source-design",
  number: 3,
  title: "The source design: a synchronous gateway vs deepqueue",
  question:
    "The source article's shape — a Django view calling the model with a blocking client under a fixed pool of gunicorn sync workers — against deepqueue, at the same offered load: throughput, p99 latency to an answer, requests refused or timed out.",
  async run(ctx: BenchContext) {
    const { settings, stack, http } = ctx;
    const gateway = await startSyncGateway({
      ...settings.syncGateway,
      modelUrl: stack.modelUrl,
      model: settings.model,
    });
    try {
      const clientTimeout = gateway.options.workerTimeoutMs;
      const callGateway = async (prompt: string) => {
        const started = Date.now();
        const answer = await http.request(`${gateway.url}/v1/generate`, {
          method: "POST",
          body: JSON.stringify({ prompt, max_tokens: settings.maxTokens, temperature: 0.7 }),
          timeoutMs: clientTimeout,
        });
        const ms = Date.now() - started;
        if (answer.status === 200) return { kind: "answered" as const, ms };
        if (answer.status === 503) return { kind: "refused" as const };
        if (answer.status === 504 || answer.status === NO_ANSWER) return { kind: "timedOut" as const };
        return { kind: "failed" as const };
      };

      // Sweep, for the throughput-vs-concurrency chart.
      const sweepBar = ctx.progress("3 sync gateway sweep", settings.concurrencies.length);
      const syncSweep: SweepPoint[] = [];
      for (const c of settings.concurrencies) {
        const run = await closedLoop({
          concurrency: c,
          durationMs: settings.sweepPointMs,
          task: (i) => callGateway(promptFor(`sweep${c}`, i)),
        });
        const t = tally(run.results);
        syncSweep.push(sweepPoint(c, t.latencies, run.results.length, run.elapsedMs));
        sweepBar.tick();
      }
      sweepBar.done();
      ctx.shared.set("syncSweep", syncSweep);

      // The same offered load on both.
      const best = ctx.shared.get("directBest") as SweepPoint | undefined;
      const capacity = best?.throughput ?? 10;
      const rate = Math.max(
        1,
        Math.min(settings.maxOfferedRate, round(capacity * settings.offeredLoadFraction)),
      );
      const total = Math.max(4, Math.round(rate * settings.offeredSeconds));
      const bar = ctx.progress("3 offered load", ctx.pipeline ? 2 * total : total);
      const sync = await openLoop({
        ratePerSecond: rate,
        total,
        task: (i) => callGateway(promptFor("offered", i)),
        onDone: () => bar.tick(),
      });
      const syncOutcome = tally(sync.results);
      let dq: { outcome: Outcome; elapsedMs: number; acceptMs: number[] } | undefined;
      if (ctx.pipeline) {
        const pipeline = ctx.pipeline;
        const run = await openLoop<Answered>({
          ratePerSecond: rate,
          total,
          task: (i) =>
            pipeline.answer(
              { prompt: promptFor("offered", i), max_tokens: settings.maxTokens, temperature: 0.7 },
              clientTimeout,
            ),
          onDone: () => bar.tick(),
        });
        dq = {
          outcome: tally(
            run.results.map((a) => {
              if (a.status !== 202) return { kind: "refused" as const };
              if (a.timedOut) return { kind: "timedOut" as const };
              if (a.result?.type !== "deepqueue.request.completed") return { kind: "failed" as const };
              return { kind: "answered" as const, ms: a.e2eMs! };
            }),
          ),
          elapsedMs: run.elapsedMs,
          acceptMs: run.results.filter((a) => a.status === 202).map((a) => a.acceptMs),
        };
      }
      bar.done();

      const row = (name: string, o: Outcome, elapsedMs: number) => {
        const lat = summarize(o.latencies);
        return [
          name,
          total,
          o.answered,
          round((o.answered / elapsedMs) * 1000),
          round(lat.p50),
          round(lat.p99),
          o.refused,
          o.timedOut,
          o.failed,
        ];
      };
      const table: Table = {
        title: `Offered load: ${rate} req/s for ${settings.offeredSeconds} s (at most ${settings.offeredLoadFraction} × the model's direct best of ${capacity} req/s); an answer counts if it comes within ${clientTimeout / 1000} s`,
        columns: [
          "",
          "offered",
          "answered",
          "answered/s",
          "p50 to answer ms",
          "p99 to answer ms",
          "refused",
          "timed out",
          "failed",
        ],
        rows: [
          row(`synchronous gateway (${gateway.options.workers} workers)`, syncOutcome, sync.elapsedMs),
          ...(dq ? [row("deepqueue", dq.outcome, dq.elapsedMs)] : []),
        ],
      };
      const cdfSeries = [{ name: "synchronous gateway", points: cdf(syncOutcome.latencies, 200, total) }];
      if (dq)
        cdfSeries.push({
          name: "deepqueue (submit → result event)",
          points: cdf(dq.outcome.latencies, 200, total),
        });
      const charts = [
        ctx.chart(
          "latency-cdf",
          lineChart({
            title: `Time to answer at ${rate} req/s offered`,
            xLabel: "ms from request to answer",
            yLabel: "fraction of offered requests answered",
            series: cdfSeries,
            xLog: true,
            yMax: 1,
            markers: false,
            legend: "bottom-right",
          }),
        ),
      ];
      const sweep = ctx.shared.get("sweep") as { direct: SweepPoint[]; pipeline: SweepPoint[] } | undefined;
      const tput = [
        {
          name: "direct to the model",
          points: (sweep?.direct ?? []).map((p) => [p.concurrency, p.throughput] as const),
        },
        {
          name: "deepqueue pipeline",
          points: (sweep?.pipeline ?? []).map((p) => [p.concurrency, p.throughput] as const),
        },
        {
          name: `synchronous gateway (${gateway.options.workers} workers)`,
          points: syncSweep.map((p) => [p.concurrency, p.throughput] as const),
        },
      ];
      charts.push(
        ctx.chart(
          "throughput-vs-concurrency",
          lineChart({
            title: "Answers per second vs concurrent clients",
            xLabel: "concurrent clients (each waits for its answer)",
            yLabel: "answers / s",
            series: tput,
            xLog: true,
          }),
        ),
      );
      const syncLat = summarize(syncOutcome.latencies);
      const headline = [
        `synchronous gateway at ${rate} req/s offered: ${round((syncOutcome.answered / sync.elapsedMs) * 1000)} answers/s, p50 ${round(syncLat.p50)} ms, p99 ${round(syncLat.p99)} ms, ${syncOutcome.timedOut} timed out, ${syncOutcome.refused} refused of ${total}`,
      ];
      const data: Record<string, unknown> = {
        rate,
        total,
        syncSweep,
        sync: { ...syncOutcome, latency: syncLat, latencies: undefined, gateway: gateway.stats() },
        gatewaySettings: gateway.options,
      };
      if (dq) {
        const dqLat = summarize(dq.outcome.latencies);
        const accept = summarize(dq.acceptMs);
        const throughputRatio = round(
          ((dq.outcome.answered / dq.elapsedMs) * 1000) /
            Math.max(1e-9, (syncOutcome.answered / sync.elapsedMs) * 1000),
        );
        headline.push(
          `deepqueue at the same load: ${round((dq.outcome.answered / dq.elapsedMs) * 1000)} answers/s (**${throughputRatio}×** the gateway), p50 ${round(dqLat.p50)} ms, p99 ${round(dqLat.p99)} ms, ${dq.outcome.timedOut} timed out, ${dq.outcome.refused} refused; accepted in p50 ${round(accept.p50)} ms / p99 ${round(accept.p99)} ms (the source claimed 320 ms async accept vs 2.8 s synchronous)`,
        );
        ctx.shared.set("sourceRatio", throughputRatio);
        ctx.shared.set("acceptP50", round(accept.p50));
        data.deepqueue = { ...dq.outcome, latencies: undefined, latency: dqLat, accept, throughputRatio };
      }
      return {
        status: dq ? ("ok" as const) : ("partial" as const),
        ...(dq ? {} : { reason: `the pipeline is not running (${stack.functionsUnavailable})` }),
        headline,
        tables: [
          table,
          {
            title: "Closed-loop sweep of the synchronous gateway",
            columns: ["concurrency", "answers/s", "p50 ms", "p99 ms", "answered", "not answered"],
            rows: syncSweep.map((p) => [p.concurrency, p.throughput, p.p50, p.p99, p.ok, p.failed]),
          },
        ],
        charts,
        notes: [
          `Gateway: ${gateway.options.workers} sync workers, backlog ${gateway.options.backlog}, worker timeout ${gateway.options.workerTimeoutMs} ms, model timeout ${gateway.options.modelTimeoutMs} ms, ${gateway.options.retries} retries with backoff factor ${gateway.options.backoffFactorMs} ms (bench/sync-gateway.ts). Its clients give up after the worker timeout, as a proxy in front of gunicorn would.`,
          "deepqueue's time to answer is submit → result event in the consumer's hand (tenant result queue).",
        ],
        data,
      };
    } finally {
      await gateway.stop();
    }
  },
};
