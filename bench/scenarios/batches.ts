import { setTimeout as sleep } from "node:timers/promises";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import OpenAI, { toFile } from "openai";
import { SQS_WORKER_DEFAULTS } from "../../functions/runtime/sqs-worker.ts";
import { provisionTenant } from "../../functions/shared/provision.ts";
import { DynamoTenantStore } from "../../functions/shared/stores/tenants.ts";
import { closedLoop } from "../load.ts";
import { type BenchContext, notAvailable, promptFor, type Scenario } from "../scenario.ts";
import { round, summarize } from "../stats.ts";

/**
 * Sizes: (a) a batch's lines and the same requests one by one, (b) two tenants' batches,
 * (c) the batch running while interactive latency is probed (cancelled after the probes).
 */
const SIZES = {
  full: { lines: 1000, big: 2000, small: 200, during: 5000, probes: 20 },
  quick: { lines: 300, big: 600, small: 60, during: 1000, probes: 10 },
} as const;
/** Answer length of every line and request: the batch machinery, not the model, is measured. */
const MAX_TOKENS = 16;
/** Concurrency of the one-by-one posts (a producer with this many requests in flight). */
const POST_CONCURRENCY = 64;
/** How often a batch is polled. */
const POLL_MS = 100;
const TIMEOUT_MS = 600_000;

function jsonl(tag: string, n: number): Buffer {
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `${tag}-${i}`,
      method: "POST",
      url: "/v1/completions",
      body: { prompt: promptFor(tag, i), max_tokens: MAX_TOKENS, temperature: 0.7 },
    }),
  );
  return Buffer.from(`${lines.join("\n")}\n`);
}

/** Uploads the file and creates the batch; `uploadMs`: the upload alone. */
async function startBatch(
  client: OpenAI,
  tag: string,
  n: number,
): Promise<OpenAI.Batch & { uploadMs: number }> {
  const t0 = performance.now();
  const file = await client.files.create({
    file: await toFile(jsonl(tag, n), `${tag}.jsonl`),
    purpose: "batch",
  });
  const uploadMs = performance.now() - t0;
  const batch = await client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/completions",
    completion_window: "24h",
  });
  return { ...batch, uploadMs };
}

/** Polls until `done`; returns the batch and each poll's (ms since `t0`, completed lines). */
async function follow(client: OpenAI, id: string, t0: number, done: (b: OpenAI.Batch) => boolean) {
  const samples: Array<{ ms: number; completed: number }> = [];
  for (;;) {
    const batch = await client.batches.retrieve(id);
    samples.push({ ms: performance.now() - t0, completed: batch.request_counts?.completed ?? 0 });
    if (done(batch) || performance.now() - t0 > TIMEOUT_MS) return { batch, samples };
    await sleep(POLL_MS);
  }
}

const ended = (b: OpenAI.Batch) => ["completed", "failed", "expired", "cancelled"].includes(b.status);

/** (a) The same N requests as one batch and posted one by one: requests per second of each. */
async function throughput(ctx: BenchContext, client: OpenAI, n: number) {
  const t0 = performance.now();
  const created = await startBatch(client, `bt${Date.now().toString(36)}`, n);
  const { batch } = await follow(client, created.id, t0, ended);
  const batchMs = performance.now() - t0;
  const tag = `bp${Date.now().toString(36)}`;
  const t1 = performance.now();
  const run = await closedLoop({
    concurrency: POST_CONCURRENCY,
    total: n,
    task: (i) =>
      ctx.pipeline!.answer(
        { prompt: promptFor(tag, i), max_tokens: MAX_TOKENS, temperature: 0.7 },
        TIMEOUT_MS,
      ),
  });
  const postedMs = performance.now() - t1;
  const answered = run.results.filter((r) => r.e2eMs !== undefined).length;
  const at = (t: number | null | undefined) => (t ?? Number.NaN) - batch.created_at;
  return {
    uploadMs: round(created.uploadMs),
    // Lines per second from validated to every line ended (the batch's own timestamps, whole seconds).
    runRps: round(
      (batch.request_counts?.completed ?? 0) /
        Math.max(1, (batch.finalizing_at ?? 0) - (batch.in_progress_at ?? 0)),
    ),
    batch: {
      status: batch.status,
      completed: batch.request_counts?.completed ?? 0,
      ms: round(batchMs),
      // Seconds after creation: validated (in_progress), all lines ended (finalizing), files written.
      phasesS: {
        inProgress: at(batch.in_progress_at),
        finalizing: at(batch.finalizing_at),
        completed: at(batch.completed_at),
      },
    },
    posted: { answered, ms: round(postedMs) },
    batchRps: round(((batch.request_counts?.completed ?? 0) / batchMs) * 1000),
    postedRps: round((answered / postedMs) * 1000),
  };
}

/** (b) Two tenants' batches at once: lines per second of each while both run. */
async function fairness(
  _ctx: BenchContext,
  big: OpenAI,
  small: OpenAI,
  sizes: { big: number; small: number },
) {
  const t0 = performance.now();
  const [a, b] = await Promise.all([
    startBatch(big, `fa${Date.now().toString(36)}`, sizes.big),
    startBatch(small, `fb${Date.now().toString(36)}`, sizes.small),
  ]);
  // Both followed from the start: a batch's count moves a window of lines at a time, so the
  // first time each count moved says more than one reading when the small batch ended.
  const [smallRun, bigRun] = await Promise.all([
    follow(small, b.id, t0, ended),
    follow(big, a.id, t0, ended),
  ]);
  const overlapS = smallRun.samples.at(-1)!.ms / 1000;
  const bigAtThatTime = bigRun.samples.filter((s) => s.ms <= overlapS * 1000).at(-1)?.completed ?? 0;
  const firstEnded = (samples: Array<{ ms: number; completed: number }>) => {
    const first = samples.find((s) => s.completed > 0);
    return first ? round(first.ms / 1000) : null;
  };
  const smallRate = (smallRun.batch.request_counts?.completed ?? 0) / overlapS;
  const bigRate = bigAtThatTime / overlapS;
  return {
    smallLines: sizes.small,
    bigLines: sizes.big,
    smallDoneS: round(overlapS),
    bigDoneS: round(bigRun.samples.at(-1)!.ms / 1000),
    smallFirstLinesS: firstEnded(smallRun.samples),
    bigFirstLinesS: firstEnded(bigRun.samples),
    smallRate: round(smallRate),
    bigRateMeanwhile: round(bigRate),
    /** small ÷ big while both ran; null when none of the big batch's lines had ended yet. */
    ratio: bigRate > 0 ? round(smallRate / bigRate) : null,
    statuses: [smallRun.batch.status, bigRun.batch.status],
  };
}

/** (c) Interactive latency alone, then with a big batch in the lane (the batch is cancelled after). */
async function interactive(ctx: BenchContext, client: OpenAI, sizes: { during: number; probes: number }) {
  const probe = async (tag: string) => {
    const latencies: number[] = [];
    for (let i = 0; i < sizes.probes; i++) {
      const answered = await ctx.pipeline!.answer(
        { prompt: promptFor(tag, i), max_tokens: MAX_TOKENS, temperature: 0.7 },
        TIMEOUT_MS,
      );
      if (answered.e2eMs !== undefined) latencies.push(answered.e2eMs);
    }
    return summarize(latencies);
  };
  const idle = await probe(`ii${Date.now().toString(36)}`);
  const t0 = performance.now();
  const running = await startBatch(client, `ib${Date.now().toString(36)}`, sizes.during);
  await follow(client, running.id, t0, (b) => (b.request_counts?.completed ?? 0) > 0 || ended(b));
  const busy = await probe(`ib${Date.now().toString(36)}`);
  const progressed = (await client.batches.retrieve(running.id)).request_counts?.completed ?? 0;
  await client.batches.cancel(running.id);
  await follow(client, running.id, t0, ended);
  return {
    idleP50: round(idle.p50),
    busyP50: round(busy.p50),
    ratio: round(busy.p50 / idle.p50),
    progressed,
  };
}

/** A second tenant for the fairness run, and OpenAI clients for both. */
async function clients(ctx: BenchContext) {
  const ddb = DynamoDBDocumentClient.from(ctx.stack.dynamo);
  const other = await provisionTenant(
    { sqs: ctx.stack.sqs, tenants: new DynamoTenantStore(ddb, ctx.stack.prefix), prefix: ctx.stack.prefix },
    { tenant: `bench-small-${Date.now().toString(36)}`, dailyRequests: null, dailyTokens: null },
  );
  const make = (apiKey: string) => new OpenAI({ baseURL: `${ctx.ingestUrl}/v1`, apiKey, maxRetries: 2 });
  return { main: make(ctx.stack.apiKey), other: make(other.api_key) };
}

export const batchesScenario: Scenario = {
  id: "batches",
  number: 10,
  title: "Batch API: throughput, fairness between batches, interactive latency beside a batch",
  question:
    "Does a batch (OpenAI's Batch API, the official openai client) complete its lines at ≥ 0.9× the rate of the same requests posted one by one; do two tenants' batches of different sizes progress at similar rates; does interactive p50 stay within 2× of idle while a big batch runs?",
  async run(ctx) {
    if (!ctx.ingestUrl || !ctx.pipeline)
      return notAvailable(`the pipeline is not running (${ctx.stack.functionsUnavailable})`);
    const sizes = SIZES[ctx.settings.mode];
    const bar = ctx.progress("10 batches", 3);
    const { main, other } = await clients(ctx);
    // The batch starts on an idle pipeline, as the one-by-one posts do: batch lines hold one slot
    // while interactive work ran within the last topLaneQuietMs (the lanes' yield), and the
    // scenario before this one was interactive.
    await sleep(SQS_WORKER_DEFAULTS.topLaneQuietMs + 500);
    const a = await throughput(ctx, main, sizes.lines);
    bar.tick();
    const b = await fairness(ctx, main, other, sizes);
    bar.tick();
    const c = await interactive(ctx, main, sizes);
    bar.done();
    const ratio = round(a.batchRps / Math.max(a.postedRps, 0.001));
    return {
      status: "ok",
      headline: [
        `a ${sizes.lines}-line batch: ${a.batchRps} lines/s end to end (upload to completed; ${a.runRps} lines/s while it ran) vs ${a.postedRps} req/s posted one by one (${ratio}×, goal ≥ 0.9)`,
        `two tenants' batches (${sizes.big} and ${sizes.small} lines): ${b.bigRateMeanwhile} vs ${b.smallRate} lines/s while both ran (small ÷ big ${b.ratio ?? "–"}); first lines ended after ${b.bigFirstLinesS ?? "–"} s (big) and ${b.smallFirstLinesS ?? "–"} s (small)`,
        `interactive p50 ${c.idleP50} ms idle, ${c.busyP50} ms beside a ${sizes.during}-line batch (${c.ratio}×, goal ≤ 2)`,
      ],
      tables: [
        {
          title: "Throughput",
          columns: ["how", "requests", "done", "wall ms", "per second"],
          rows: [
            ["one batch, upload to completed", sizes.lines, a.batch.completed, a.batch.ms, a.batchRps],
            ["of which: validated → all lines ended", sizes.lines, a.batch.completed, "", a.runRps],
            [
              `POST /v1/requests, ${POST_CONCURRENCY} in flight`,
              sizes.lines,
              a.posted.answered,
              a.posted.ms,
              a.postedRps,
            ],
          ],
        },
        {
          title: "Two tenants' batches started together",
          columns: ["batch", "lines", "lines/s while both ran", "first lines ended after s", "ended after s"],
          rows: [
            ["big", b.bigLines, b.bigRateMeanwhile, b.bigFirstLinesS ?? "–", b.bigDoneS],
            ["small", b.smallLines, b.smallRate, b.smallFirstLinesS ?? "–", b.smallDoneS],
          ],
        },
        {
          title: "Interactive latency (POST /v1/requests → result event), one at a time",
          columns: ["while", "p50 ms"],
          rows: [
            ["idle", c.idleP50],
            [
              `a ${sizes.during}-line batch runs (${c.progressed} lines done meanwhile; then cancelled)`,
              c.busyP50,
            ],
          ],
        },
      ],
      charts: [],
      notes: [
        `The batch worker keeps at most DEEPQUEUE_BATCH_WINDOW lines of each batch in the batch lane; the batcher serves the interactive lane first.`,
      ],
      data: { throughput: a, fairness: b, interactive: c },
    };
  },
};
