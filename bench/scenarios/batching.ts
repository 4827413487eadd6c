import { notAvailable, type Scenario } from "../scenario.ts";
import { round } from "../stats.ts";
import { type BurstRun, pipelineBurst } from "./throughput.ts";

export const batchingScenario: Scenario = {
  id: "batching",
  number: 4,
  title: "Batching: micro-batches on vs off",
  question:
    "The same burst of requests through the pipeline with the batcher's micro-batching (its defaults) and with batch size 1 (DEEPQUEUE_BATCH_SIZE=1), at equal load.",
  async run(ctx) {
    if (!ctx.pipeline) return notAvailable(`the pipeline is not running (${ctx.stack.functionsUnavailable})`);
    const n = ctx.settings.throughputRequests;
    const on = await pipelineBurst(ctx, n, "batch-on");
    await ctx.stack.stopFunction("batcher");
    let off: BurstRun;
    try {
      await ctx.stack.startFunction("batcher", { DEEPQUEUE_BATCH_SIZE: "1" });
      off = await pipelineBurst(ctx, n, "batch-off");
    } finally {
      await ctx.stack.stopFunction("batcher");
      await ctx.stack.startFunction("batcher");
    }
    const row = (name: string, r: BurstRun) => [
      name,
      r.ok,
      round(r.throughput),
      round(r.e2e.p50),
      round(r.e2e.p99),
      r.occupancy.calls,
      round(r.occupancy.promptsPerCall),
    ];
    const ratio = round(on.throughput / off.throughput);
    return {
      status: "ok" as const,
      headline: [
        `micro-batching on/off throughput = **${ratio}** (${round(on.throughput)} vs ${round(off.throughput)} req/s); model calls ${on.occupancy.calls} vs ${off.occupancy.calls} for ${n} requests; p99 ${round(on.e2e.p99)} vs ${round(off.e2e.p99)} ms`,
      ],
      tables: [
        {
          title: `${n} requests, submitted as fast as ingest accepts them`,
          columns: ["batcher", "answered", "req/s", "p50 ms", "p99 ms", "model calls", "prompts/call"],
          rows: [row("micro-batching (defaults)", on), row("batch size 1", off)],
        },
      ],
      charts: [],
      notes: [
        "The model server batches continuously by itself (vLLM-style), so what micro-batching saves here is HTTP calls and per-call overhead in the batcher, not GPU efficiency.",
      ],
      data: { on, off, ratio },
    };
  },
};
