import { setTimeout as sleep } from "node:timers/promises";
import { notAvailable, type Scenario } from "../scenario.ts";
import { round } from "../stats.ts";
import { type BurstRun, pipelineBurst } from "./throughput.ts";

/** The SQS worker runtime's long-poll wait (SQS_WORKER_DEFAULTS.waitTimeSeconds). */
const LONG_POLL_SECONDS = 20;

export const batchingScenario: Scenario = {
  id: "batching",
  number: 4,
  title: "Batching: micro-batches on vs off",
  question:
    "The same burst of requests through the pipeline with the batcher's micro-batching (its defaults) and with batch size 1 (DEEPQUEUE_BATCH_SIZE=1), at equal load.",
  async run(ctx) {
    if (!ctx.pipeline) return notAvailable(`the pipeline is not running (${ctx.stack.functionsUnavailable})`);
    const n = ctx.settings.batchingRequests;
    const on = await pipelineBurst(ctx, n, "batch", "batching on");
    // Restart the batcher with batch size 1. It runs last, so nothing needs the default batcher back.
    // A killed process's open long polls stay registered in the SQS emulator until their wait ends and would
    // take the next messages, hiding them for the 60 s visibility timeout: wait them out.
    await ctx.stack.stopFunction("batcher", { kill: true });
    const wait = ctx.progress("4 batcher restart", 1);
    await sleep(LONG_POLL_SECONDS * 1000 + 500);
    await ctx.stack.startFunction("batcher", { DEEPQUEUE_BATCH_SIZE: "1" });
    wait.done();
    const off = await pipelineBurst(ctx, n, "batch", "batching off");
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
        "The model server batches continuously by itself (vLLM-style), so what micro-batching saves here is HTTP calls and per-call overhead in the batcher, not GPU efficiency; and a micro-batch's call ends with its longest answer, so its requests hold the batcher's in-flight slots (K) until then.",
        "This scenario runs last: it restarts the batcher with DEEPQUEUE_BATCH_SIZE=1 after waiting out the old process's long polls (the emulator keeps a closed long poll registered until its 20 s wait ends, and a message it takes comes back only after the visibility timeout).",
      ],
      data: { on, off, ratio },
    };
  },
};
