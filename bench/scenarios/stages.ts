import { setTimeout as sleep } from "node:timers/promises";
import { queueName, resultQueueName } from "../../functions/shared/names.ts";
import type { Answered } from "../pipeline.ts";
import { notAvailable, type Scenario } from "../scenario.ts";
import { median, round, summarize } from "../stats.ts";
import { barChart } from "../svg.ts";
import { sendTimes } from "../trace.ts";

/** Sum and count of a Prometheus histogram per `function` label, from /metrics text. */
export function histogramTotals(text: string, name: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}_sum`)) sum += Number(line.split(" ").at(-1));
    else if (line.startsWith(`${name}_count`)) count += Number(line.split(" ").at(-1));
  }
  return { sum, count };
}

const STAGES = [
  ["ingest", "ingest (POST → its queue send)"],
  ["requestsCache", "requests queue + cache (cacheable requests and conversation turns only)"],
  ["inferenceWait", "inference queue + batch wait"],
  ["model", "model (the simulator's own time)"],
  ["batcherFinish", "batcher: record, cache entry → result (or delivery) send"],
  ["delivery", "delivery queue + deliver (requests with a callback only)"],
  ["tenantQueue", "tenant result queue → consumer"],
] as const;

/** Cross-checks from the record's and SQS's own timestamps (not part of the sum). */
const CHECKS = [
  ["recordLifetime", "record created_at → completed_at (ingest's and the batcher's clocks)"],
  ["tenantWait", "tenant queue: SentTimestamp → ApproximateFirstReceiveTimestamp"],
] as const;
type CheckKey = (typeof CHECKS)[number][0];
type StageKey = (typeof STAGES)[number][0];

export const stagesScenario: Scenario = {
  id: "stages",
  number: 6,
  title: "Added latency per stage at low load",
  question:
    "One request at a time: how long each stage takes, from trace timestamps — the producer's clock, the SQS emulator's send/delete timestamps (fauxqs message spies) for every queue, the model calls seen by the recording proxy, the record's created_at/completed_at and the tenant queue's SentTimestamp / ApproximateFirstReceiveTimestamp — and the total overhead against the model's own time.",
  async run(ctx) {
    if (!ctx.pipeline) return notAvailable(`the pipeline is not running (${ctx.stack.functionsUnavailable})`);
    const { settings, stack, http } = ctx;
    const pipeline = ctx.pipeline;
    const tag = `stage-${Date.now().toString(36)}`;
    const workers = ["cache", "batcher", "deliver"] as const;
    const scrape = async () =>
      Object.fromEntries(
        await Promise.all(
          workers.map(async (w) => {
            const url = stack.functions.get(w)?.url;
            const text = url ? (await http.request(`${url}/metrics`)).body : "";
            return [
              w,
              {
                wait: histogramTotals(text, "deepqueue_queue_wait_seconds"),
                handler: histogramTotals(text, "deepqueue_worker_handler_seconds"),
              },
            ] as const;
          }),
        ),
      );
    stack.spy.clear();
    const before = await scrape();
    const bar = ctx.progress("6 stages", settings.stageRequests);
    const answers: Answered[] = [];
    for (let i = 0; i < settings.stageRequests; i++) {
      answers.push(
        await pipeline.answer(
          {
            prompt: `bench ${tag} #${i}: one request at a time, to time each stage.`,
            max_tokens: settings.maxTokens,
            temperature: 0.7,
          },
          settings.answerTimeoutMs,
        ),
      );
      bar.tick();
      await sleep(50);
    }
    bar.done();
    const after = await scrape();

    const published = sendTimes(stack.spy.getAllMessages());
    const calls = stack.proxy.calls(answers[0]?.startedAt ?? 0);
    const q = {
      requests: queueName(stack.prefix, "requests"),
      inference: queueName(stack.prefix, "inference"),
      delivery: queueName(stack.prefix, "delivery"),
      results: resultQueueName(stack.prefix, stack.tenant),
    };
    const rows: Array<Record<StageKey | CheckKey, number> & { e2e: number }> = [];
    answers.forEach((a, i) => {
      if (!a.id || !a.result) return;
      const t = published.get(a.id);
      const call = calls.find((c) => c.prompts.some((p) => p.startsWith(`bench ${tag} #${i}:`)));
      // A request visits the cache stage and deliver only when they have work for it (these do
      // not: temperature 0.7, no callback); a hop it skips counts 0.
      const tA = t?.get(q.requests);
      const tI = t?.get(q.inference);
      const tD = t?.get(q.delivery);
      const tR = a.result.sentTimestamp;
      if (!tI || !call) return;
      rows.push({
        ingest: (tA ?? tI) - a.startedAt,
        requestsCache: tA ? tI - tA : 0,
        inferenceWait: call.start - tI,
        model: call.end - call.start,
        batcherFinish: (tD ?? tR) - call.end,
        delivery: tD ? tR - tD : 0,
        tenantQueue: a.result.receivedAt - tR,
        recordLifetime: (a.result.completedAt ?? Number.NaN) - a.result.createdAt,
        tenantWait: a.result.firstReceiveTimestamp - tR,
        e2e: a.result.receivedAt - a.startedAt,
      });
    });
    if (rows.length === 0) {
      return notAvailable(
        "no request could be traced through every queue (spy events, proxy calls and result events did not line up)",
      );
    }
    const med = Object.fromEntries(STAGES.map(([k]) => [k, median(rows.map((r) => r[k]))])) as Record<
      StageKey,
      number
    >;
    const e2e = summarize(rows.map((r) => r.e2e));
    const overhead = median(rows.map((r) => r.e2e - r.model));
    const accept = median(answers.filter((a) => a.status === 202).map((a) => a.acceptMs));
    ctx.shared.set("overheadMs", round(overhead));
    ctx.shared.set("modelMs", round(med.model));
    const chart = ctx.chart(
      "stages",
      barChart({
        title: `Where one request's time goes at low load (median of ${rows.length})`,
        unit: "ms",
        bars: STAGES.map(([k, label]) => ({
          label: label.split(" (")[0]!.split(":")[0]!,
          value: round(med[k]),
          note: `(${round((med[k] / e2e.p50) * 100)}%)`,
        })),
      }),
    );
    const overheadChart = ctx.chart(
      "stages-overhead",
      barChart({
        title: `What deepqueue adds around the model (${round(med.model)} ms, not drawn), median ms`,
        unit: "ms",
        bars: STAGES.filter(([k]) => k !== "model").map(([k, label]) => ({
          label: label.split(" (")[0]!.split(":")[0]!,
          value: round(med[k]),
        })),
      }),
    );
    const perWorker = workers.map((w) => {
      const waitN = after[w]!.wait.count - before[w]!.wait.count;
      const handlerN = after[w]!.handler.count - before[w]!.handler.count;
      return [
        w,
        waitN ? round(((after[w]!.wait.sum - before[w]!.wait.sum) / waitN) * 1000) : "n/a",
        handlerN ? round(((after[w]!.handler.sum - before[w]!.handler.sum) / handlerN) * 1000) : "n/a",
      ];
    });
    return {
      status: "ok" as const,
      headline: [
        `at low load a request spends **${round(overhead)} ms** in the pipeline around **${round(med.model)} ms** of model time (median end to end ${round(e2e.p50)} ms; overhead = ${round((overhead / med.model) * 100)}% of the model's time); accepted in ${round(accept)} ms`,
      ],
      tables: [
        {
          title: `Median per stage over ${rows.length} sequential requests (${settings.maxTokens} tokens each)`,
          columns: ["stage", "median ms", "p90 ms", "share of end to end"],
          rows: [
            ...STAGES.map(([k, label]) => {
              const s = summarize(rows.map((r) => r[k]));
              return [label, round(med[k]), round(s.p90), `${round((med[k] / e2e.p50) * 100)}%`];
            }),
            ["end to end (submit → result in hand)", round(e2e.p50), round(e2e.p90), "100%"],
            ...CHECKS.map(([k, label]) => {
              const s = summarize(rows.map((r) => r[k]).filter(Number.isFinite));
              return [
                `cross-check: ${label}`,
                round(s.p50),
                round(s.p90),
                `${round((s.p50 / e2e.p50) * 100)}%`,
              ];
            }),
            ["202 Accepted (producer's view)", round(accept), "", ""],
          ],
        },
        {
          title: "Inside the queue stages: the workers' own metrics over the same requests (means)",
          columns: ["worker", "queue wait ms (SentTimestamp → first receive)", "handler ms per batch"],
          rows: perWorker,
        },
      ],
      charts: [chart, overheadChart],
      notes: [
        "Stage boundaries: producer clock (POST start); SendMessage to each queue (fauxqs spy, the emulator's clock = this machine's); model call start/end (recording proxy); SentTimestamp of the result event on the tenant queue; the consumer's receive. Medians per stage do not add up exactly to the median end to end.",
        "Queue stages include each worker's long-poll hand-off; on AWS, SQS adds ~10-30 ms per hop that an in-process emulator does not.",
      ],
      data: { stagesMedianMs: med, e2e, overheadMs: overhead, acceptMs: accept, perWorker, samples: rows },
    };
  },
};
