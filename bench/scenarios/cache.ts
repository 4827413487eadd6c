import type { Answered, PipelineClient } from "../pipeline.ts";
import type { Progress } from "../progress.ts";
import { type BenchContext, notAvailable, type Scenario } from "../scenario.ts";
import { cdf, round, summarize } from "../stats.ts";
import { lineChart } from "../svg.ts";

export const cacheScenario: Scenario = {
  id: "cache",
  number: 5,
  title: "Cache: a cached answer vs a model answer; coalescing",
  question:
    "End-to-end latency (submit → result event) of a cache hit against a model answer for the same deterministic prompt (temperature 0), and how many model calls N identical in-flight requests cause.",
  async run(ctx) {
    if (!ctx.pipeline) return notAvailable(`the pipeline is not running (${ctx.stack.functionsUnavailable})`);
    const { settings } = ctx;
    const pipeline = ctx.pipeline;
    const stamp = Date.now().toString(36);
    const bar = ctx.progress("5 cache", settings.cachePrompts * 2 + settings.coalesceCopies);
    const { miss, hit } = await missThenHit(pipeline, ctx, bar, stamp);
    const missOk = miss.filter((a) => a.result?.source === "model");
    const hitOk = hit.filter((a) => a.result?.source === "cache");
    const missLat = summarize(missOk.map((a) => a.e2eMs!));
    const hitLat = summarize(hitOk.map((a) => a.e2eMs!));
    const { modelPrompts, sources } = await coalesce(pipeline, ctx, bar, stamp);
    bar.done();
    const speedup = round(missLat.p50 / hitLat.p50);
    ctx.shared.set("cacheSpeedup", speedup);
    const chart = cacheChart(ctx, missOk, hitOk);
    const status = hitOk.length > 0 && missOk.length > 0 ? ("ok" as const) : ("partial" as const);
    return {
      status,
      ...(status === "partial"
        ? {
            reason: `expected model then cache answers; got ${missOk.length} model and ${hitOk.length} cache answers`,
          }
        : {}),
      headline: [
        `cache hit p50 **${round(hitLat.p50)} ms** vs model answer p50 ${round(missLat.p50)} ms (${speedup}× faster); ${settings.coalesceCopies} identical in-flight requests → **${modelPrompts}** model prompt(s)`,
      ],
      tables: [
        {
          columns: ["answer", "count", "p50 ms", "p90 ms", "max ms"],
          rows: [
            ["model (first time)", missOk.length, round(missLat.p50), round(missLat.p90), round(missLat.max)],
            [
              "cache (same prompt again)",
              hitOk.length,
              round(hitLat.p50),
              round(hitLat.p90),
              round(hitLat.max),
            ],
          ],
        },
        {
          title: "Coalescing",
          columns: ["identical requests in flight", "model prompts sent", "answers by source"],
          rows: [[settings.coalesceCopies, modelPrompts, JSON.stringify(sources)]],
        },
      ],
      charts: [chart],
      notes: [
        "Cached answers are only used for temperature 0 (or tenants that opt in): the `cache` field of docs/api.md.",
        "A hit still goes ingest → requests queue → cache → delivery queue → deliver → result queue: it skips the inference queue, the batcher and the model.",
      ],
      data: {
        missSources: miss.map(sourceOf),
        hitSources: hit.map(sourceOf),
        miss: missLat,
        hit: hitLat,
        speedup,
        coalesce: { copies: settings.coalesceCopies, modelPrompts, sources },
      },
    };
  },
};

/** Where an answer came from, or why there is none. */
function sourceOf(a: Answered): string {
  return a.result?.source ?? (a.timedOut ? "timed out" : `status ${a.status}`);
}

/** Each deterministic prompt twice: first the model answers it, then the cache. */
async function missThenHit(pipeline: PipelineClient, ctx: BenchContext, bar: Progress, stamp: string) {
  const { settings } = ctx;
  const miss: Answered[] = [];
  const hit: Answered[] = [];
  for (let i = 0; i < settings.cachePrompts; i++) {
    const body = {
      prompt: `bench cache ${stamp} #${i}: what does a response cache keyed by prompt save?`,
      max_tokens: settings.maxTokens,
      temperature: 0,
    };
    miss.push(await pipeline.answer(body, settings.answerTimeoutMs));
    bar.tick();
    hit.push(await pipeline.answer(body, settings.answerTimeoutMs));
    bar.tick();
  }
  return { miss, hit };
}

/** Coalescing: N identical deterministic requests in flight at once, and the model prompts they cost. */
async function coalesce(pipeline: PipelineClient, ctx: BenchContext, bar: Progress, stamp: string) {
  const { settings, stack } = ctx;
  const prompt = `bench coalesce ${stamp}: one prompt, many identical requests at once.`;
  const from = Date.now();
  const copies = await Promise.all(
    Array.from({ length: settings.coalesceCopies }, () =>
      pipeline
        .answer({ prompt, max_tokens: settings.maxTokens, temperature: 0 }, settings.answerTimeoutMs * 2)
        .then((a) => {
          bar.tick();
          return a;
        }),
    ),
  );
  const modelPrompts = stack.proxy
    .calls(from)
    .flatMap((c) => c.prompts)
    .filter((p) => p.includes(`bench coalesce ${stamp}`)).length;
  const sources: Record<string, number> = {};
  for (const a of copies) sources[sourceOf(a)] = (sources[sourceOf(a)] ?? 0) + 1;
  return { modelPrompts, sources };
}

function cacheChart(ctx: BenchContext, missOk: Answered[], hitOk: Answered[]): string {
  return ctx.chart(
    "cache-cdf",
    lineChart({
      title: "Submit → result event: cache hit vs model answer",
      xLabel: "ms",
      yLabel: "fraction answered",
      xLog: true,
      yMax: 1,
      legend: "bottom-right",
      series: [
        { name: "model answer (miss)", points: cdf(missOk.map((a) => a.e2eMs!)) },
        { name: "cache hit", points: cdf(hitOk.map((a) => a.e2eMs!)) },
      ],
    }),
  );
}
