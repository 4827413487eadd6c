import { closedLoop } from "../load.ts";
import { directComplete, modelOccupancy } from "../model.ts";
import type { Answered, Submitted } from "../pipeline.ts";
import { type BenchContext, notAvailable, promptFor, type Scenario, type Table } from "../scenario.ts";
import { round, summarize } from "../stats.ts";
import { runThroughputBench, type ThroughputBenchResult } from "../throughput.ts";

/** One point of the concurrency sweep, shared with scenario 3's chart. */
export interface SweepPoint {
  concurrency: number;
  throughput: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
}

/** One point of a concurrency sweep: answers per second and latency of the answered requests. */
export function sweepPoint(
  concurrency: number,
  latenciesMs: number[],
  attempted: number,
  elapsedMs: number,
): SweepPoint {
  const lat = summarize(latenciesMs);
  return {
    concurrency,
    throughput: round((latenciesMs.length / elapsedMs) * 1000),
    p50: round(lat.p50),
    p99: round(lat.p99),
    ok: latenciesMs.length,
    failed: attempted - latenciesMs.length,
  };
}

export interface BurstRun {
  requests: number;
  ok: number;
  failed: number;
  wallMs: number;
  throughput: number;
  e2e: ReturnType<typeof summarize>;
  firstModelCallMs: number;
  afterLastModelAnswerMs: number;
  occupancy: ReturnType<typeof modelOccupancy>;
  sources: Record<string, number>;
}

/** Direct: N calls at concurrency c, straight to the model server. */
export async function directRun(ctx: BenchContext, n: number, concurrency: number, tag: string) {
  const { settings, stack, http } = ctx;
  const from = Date.now();
  const run = await closedLoop({
    concurrency,
    total: n,
    task: (i) =>
      directComplete(http, stack.modelUrl, {
        model: settings.model,
        prompt: promptFor(tag, i),
        maxTokens: settings.maxTokens,
      }),
  });
  const to = Date.now();
  const ok = run.results.filter((r) => r.ok);
  return {
    requests: n,
    ok: ok.length,
    failed: n - ok.length,
    wallMs: run.elapsedMs,
    throughput: (ok.length / run.elapsedMs) * 1000,
    latency: summarize(ok.map((r) => r.ms)),
    occupancy: modelOccupancy(stack.proxy.calls(from), from, to),
  };
}

/**
 * The pipeline at full speed: N producers' requests submitted as fast as
 * ingest takes them (32 at a time), then every result awaited on the tenant
 * queue. Throughput = answers / (last answer − first submit).
 */
export async function pipelineBurst(
  ctx: BenchContext,
  n: number,
  tag: string,
  label = tag,
): Promise<BurstRun> {
  const pipeline = ctx.pipeline!;
  const { settings, stack } = ctx;
  const from = Date.now();
  const bar = ctx.progress(`  burst: ${label}`, n);
  const submitted = await closedLoop<Submitted>({
    concurrency: 32,
    total: n,
    task: (i) =>
      pipeline.submit({
        prompt: promptFor(tag, i),
        max_tokens: settings.maxTokens,
        temperature: 0.7,
      }),
  });
  const answers: Answered[] = await Promise.all(
    submitted.results.map((s) =>
      pipeline.waitFor(s, settings.answerTimeoutMs * 4).then((a) => {
        bar.tick();
        return a;
      }),
    ),
  );
  const ok = answers.filter((a) => a.result?.type === "deepqueue.request.completed");
  const first = Math.min(...answers.map((a) => a.startedAt));
  const last = Math.max(...ok.map((a) => a.result!.receivedAt), first + 1);
  const calls = stack.proxy.calls(from).filter((c) => c.prompts.some((p) => p.startsWith(`bench ${tag} #`)));
  const firstCall = Math.min(...calls.map((c) => c.start));
  const lastEnd = Math.max(...calls.map((c) => c.end));
  const sources: Record<string, number> = {};
  for (const a of answers) {
    const key = a.result
      ? (a.result.source ?? a.result.type)
      : a.timedOut
        ? "timed out"
        : `refused ${a.status}`;
    sources[key] = (sources[key] ?? 0) + 1;
  }
  bar.done(`${round((ok.length / (last - first)) * 1000)} req/s`);
  return {
    requests: n,
    ok: ok.length,
    failed: n - ok.length,
    wallMs: last - first,
    throughput: (ok.length / (last - first)) * 1000,
    e2e: summarize(ok.map((a) => a.e2eMs!)),
    firstModelCallMs: calls.length ? firstCall - first : Number.NaN,
    afterLastModelAnswerMs: calls.length ? last - lastEnd : Number.NaN,
    occupancy: modelOccupancy(calls, first, last),
    sources,
  };
}

export const throughputScenario: Scenario = {
  id: "throughput",
  number: 2,
  title: "Throughput: the model alone vs through the pipeline",
  question:
    "N requests straight to the model server at its best concurrency, against the same N through ingest → queues → cache → batcher → deliver → result queue. Goal: ≥ 0.95 of direct.",
  async run(ctx) {
    const { settings, stack, http } = ctx;
    const sweep: { direct: SweepPoint[]; pipeline: SweepPoint[] } = { direct: [], pipeline: [] };
    const bar = ctx.progress("2 throughput sweep", settings.concurrencies.length * 2);
    for (const c of settings.concurrencies) {
      bar.label(`direct c=${c}`);
      const run = await closedLoop({
        concurrency: c,
        durationMs: settings.sweepPointMs,
        task: (i) =>
          directComplete(http, stack.modelUrl, {
            model: settings.model,
            prompt: promptFor(`sweep${c}`, i),
            maxTokens: settings.maxTokens,
          }),
      });
      const ok = run.results.filter((r) => r.ok);
      sweep.direct.push(
        sweepPoint(
          c,
          ok.map((r) => r.ms),
          run.results.length,
          run.elapsedMs,
        ),
      );
      bar.tick();
      if (ctx.pipeline) {
        bar.label(`pipeline c=${c}`);
        const pipeline = ctx.pipeline;
        const prun = await closedLoop({
          concurrency: c,
          durationMs: settings.sweepPointMs,
          task: (i) =>
            pipeline.answer(
              { prompt: promptFor(`sweep${c}`, i), max_tokens: settings.maxTokens, temperature: 0.7 },
              settings.answerTimeoutMs,
            ),
        });
        const pok = prun.results.filter((r) => r.result?.type === "deepqueue.request.completed");
        sweep.pipeline.push(
          sweepPoint(
            c,
            pok.map((r) => r.e2eMs!),
            prun.results.length,
            prun.elapsedMs,
          ),
        );
      }
      bar.tick();
    }
    bar.done();
    ctx.shared.set("sweep", sweep);
    const best = sweep.direct.reduce((a, b) => (b.throughput > a.throughput ? b : a));
    ctx.shared.set("directBest", best);

    const sweepTable: Table = {
      title: "Closed-loop sweep (each user waits for its answer, then asks again)",
      columns: [
        "concurrency",
        "direct req/s",
        "direct p50 ms",
        "direct p99 ms",
        "pipeline req/s",
        "pipeline p50 ms",
        "pipeline p99 ms",
      ],
      rows: sweep.direct.map((d, i) => {
        const p = sweep.pipeline[i];
        return [
          d.concurrency,
          d.throughput,
          d.p50,
          d.p99,
          p?.throughput ?? "n/a",
          p?.p50 ?? "n/a",
          p?.p99 ?? "n/a",
        ];
      }),
    };

    const n = settings.throughputRequests;
    const nbar = ctx.progress("2 throughput direct", 1);
    const direct = await directRun(ctx, n, best.concurrency, "tput");
    nbar.done(`${round(direct.throughput)} req/s at c=${best.concurrency}`);
    if (!ctx.pipeline) {
      return {
        ...notAvailable(`the pipeline is not running (${stack.functionsUnavailable})`),
        status: "partial" as const,
        headline: [
          `direct: ${round(direct.throughput)} req/s at concurrency ${best.concurrency}; pipeline not available: ${stack.functionsUnavailable}`,
        ],
        tables: [sweepTable],
        data: { sweep, direct },
      };
    }
    const pipe = await pipelineBurst(ctx, n, "tput");
    // Cross-check with the worker helper's bench: workers in one process, requests injected after ingest.
    const xbar = ctx.progress("2 runThroughputBench", 1);
    let crossCheck: ThroughputBenchResult | string;
    try {
      crossCheck = await runThroughputBench({
        requests: settings.crossCheckRequests,
        maxTokens: settings.maxTokens,
        timeScale: Number(settings.simulator.timeScale ?? 1),
        concurrencies: [best.concurrency],
        lowLoadRequests: settings.mode === "quick" ? 2 : 5,
      });
      xbar.done(`ratio ${crossCheck.ratio}`);
    } catch (error) {
      crossCheck = error instanceof Error ? error.message : String(error);
      xbar.done(`failed: ${crossCheck}`);
    }
    const ratio = round(pipe.throughput / direct.throughput);
    ctx.shared.set("throughputRatio", ratio);
    const gap: Table = {
      title: `The same ${n} requests (${settings.maxTokens} tokens each): where the time goes`,
      columns: [
        "",
        "answered",
        "wall s",
        "req/s",
        "model calls",
        "prompts/call",
        "mean sequences in the model",
        "before first model call ms",
        "after last model answer ms",
      ],
      rows: [
        [
          `direct, concurrency ${best.concurrency}`,
          direct.ok,
          round(direct.wallMs / 1000),
          round(direct.throughput),
          direct.occupancy.calls,
          round(direct.occupancy.promptsPerCall),
          round(direct.occupancy.meanSequences),
          "–",
          "–",
        ],
        ...(typeof crossCheck === "string"
          ? []
          : [
              [
                `cross-check: runThroughputBench, ${crossCheck.requests} requests injected on the requests queue, workers in one process (direct ${crossCheck.direct.best.requestsPerSecond} req/s)`,
                crossCheck.pipeline.completed,
                round(crossCheck.pipeline.seconds),
                round(crossCheck.pipeline.requestsPerSecond),
                "–",
                round(crossCheck.pipeline.meanPromptsPerCall),
                "–",
                "–",
                "–",
              ],
            ]),
        [
          "pipeline (burst of producers)",
          pipe.ok,
          round(pipe.wallMs / 1000),
          round(pipe.throughput),
          pipe.occupancy.calls,
          round(pipe.occupancy.promptsPerCall),
          round(pipe.occupancy.meanSequences),
          round(pipe.firstModelCallMs),
          round(pipe.afterLastModelAnswerMs),
        ],
      ],
    };
    return {
      status: "ok" as const,
      headline: [
        `pipeline/direct throughput = **${ratio}** (${round(pipe.throughput)} vs ${round(direct.throughput)} req/s; goal ≥ 0.95${ratio >= 0.95 ? ", met" : ", not met"})`,
        `where the gap goes: ${round(pipe.firstModelCallMs)} ms before the first model call (ingest, requests queue, cache, inference queue), ${round(pipe.afterLastModelAnswerMs)} ms after the last model answer (batcher, delivery, result queue); the rest is how full the model was kept: ${round(pipe.occupancy.meanSequences)} sequences in flight on average through the pipeline (${pipe.occupancy.calls} calls of ${round(pipe.occupancy.promptsPerCall)} prompts, a batched call counted whole) vs ${round(direct.occupancy.meanSequences)} direct`,
      ],
      tables: [gap, sweepTable],
      charts: [],
      notes: [
        "Mean sequences in the model = Σ (prompts × call duration) / wall time, from the recording proxy; a batched call counts each prompt for the whole call, so it is an upper bound for the pipeline.",
        "The gap is the time before the first model call (ingest + two queues + cache for the first requests) plus the time after the last answer (delivery + result queue), plus any time the model runs below its best concurrency.",
        `Pipeline answers by source: ${JSON.stringify(pipe.sources)}.`,
        typeof crossCheck === "string"
          ? `The cross-check (bench/throughput.ts) failed: ${crossCheck}`
          : `Cross-check (bench/throughput.ts, its own emulators and simulator, no ingest, workers in one process): pipeline/direct = ${crossCheck.ratio}.`,
      ],
      data: { sweep, direct, pipeline: pipe, ratio, crossCheck },
    };
  },
};
