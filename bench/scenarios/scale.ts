import { queueName } from "../../functions/shared/names.ts";
import type { Submitted } from "../pipeline.ts";
import { notAvailable, type Scenario, type Table } from "../scenario.ts";
import { FUNCTION_NAMES, functionRss } from "../stack.ts";
import { round, summarize } from "../stats.ts";
import { sendTimes } from "../trace.ts";
import { pipelineBurst } from "./throughput.ts";

const WORDS = "the queue keeps every accepted request until a model answers it ".split(" ");

/** English-ish text of about `bytes` bytes. */
export function textOfSize(bytes: number, seed: string): string {
  let out = `${seed} `;
  let i = 0;
  while (out.length < bytes) out += `${WORDS[i++ % WORDS.length]} `;
  return out.slice(0, bytes);
}

export const scaleScenario: Scenario = {
  id: "scale",
  number: 7,
  title: "Scale: memory per function, and ingest cost vs body size and conversation length",
  question:
    "Resident memory (RSS, from /proc) of each function's process idle and under a burst; how ingest's accept time grows with the body size, the number of chat messages, and a stored conversation's length.",
  async run(ctx) {
    if (!ctx.pipeline) return notAvailable(`the pipeline is not running (${ctx.stack.functionsUnavailable})`);
    const { settings, stack } = ctx;
    const pipeline = ctx.pipeline;

    // Memory under load.
    const idle = Object.fromEntries(
      FUNCTION_NAMES.map((n) => [
        n,
        stack.functions.get(n) ? functionRss(stack.functions.get(n)!) : undefined,
      ]),
    );
    const peak: Record<string, number> = {};
    const sampler = setInterval(() => {
      for (const n of FUNCTION_NAMES) {
        const proc = stack.functions.get(n);
        const rss = proc ? functionRss(proc) : undefined;
        if (rss !== undefined) peak[n] = Math.max(peak[n] ?? 0, rss);
      }
      peak.bench = Math.max(peak.bench ?? 0, process.memoryUsage().rss / 1024 ** 2);
    }, 200);
    let burst: Awaited<ReturnType<typeof pipelineBurst>>;
    try {
      burst = await pipelineBurst(ctx, settings.scaleRequests, "scale");
    } finally {
      clearInterval(sampler);
    }
    const memory: Table = {
      title: `RSS of each function's process, idle and at peak during a burst of ${settings.scaleRequests} requests (${round(burst.throughput)} req/s)`,
      columns: ["process", "idle MiB", "peak MiB under load"],
      rows: [
        ...FUNCTION_NAMES.map((n) => [n, round(idle[n] ?? Number.NaN), round(peak[n] ?? Number.NaN)]),
        ["bench process (emulators, simulator, load)", "", round(peak.bench ?? Number.NaN)],
      ],
    };

    const bar = ctx.progress(
      "7 ingest cost",
      (settings.bodySizesBytes.length + settings.messageCounts.length) * 5 + settings.conversationTurns,
    );
    const acceptTimes = async (make: (i: number) => Parameters<typeof pipeline.submit>[0]) => {
      const results: Submitted[] = [];
      for (let i = 0; i < 5; i++) {
        results.push(await pipeline.submit(make(i)));
        bar.tick();
      }
      const ok = results.filter((r) => r.status === 202);
      const statuses = [
        ...new Set(results.map((r) => `${r.status}${r.errorCode ? ` ${r.errorCode}` : ""}`)),
      ].join(", ");
      return { p50: round(summarize(results.map((r) => r.acceptMs)).p50), accepted: ok.length, statuses };
    };
    const bySize: Array<Array<string | number>> = [];
    for (const bytes of settings.bodySizesBytes) {
      const r = await acceptTimes((i) => ({
        prompt: textOfSize(bytes, `bench size ${bytes} #${i}`),
        max_tokens: 8,
        temperature: 0.7,
      }));
      bySize.push([bytes, r.p50, r.statuses]);
    }
    const byMessages: Array<Array<string | number>> = [];
    for (const count of settings.messageCounts) {
      const r = await acceptTimes((i) => ({
        messages: Array.from({ length: count }, (_, m) => ({
          role: m === count - 1 || m % 2 === 0 ? "user" : "assistant",
          content: textOfSize(200, `bench msgs ${count} #${i}.${m}`),
        })),
        max_tokens: 8,
        temperature: 0.7,
      }));
      byMessages.push([count, r.p50, r.statuses]);
    }
    const conversation = `bench-conv-${Date.now().toString(36)}`;
    const turns: Array<Array<string | number>> = [];
    const turnIds: Array<string | undefined> = [];
    for (let t = 1; t <= settings.conversationTurns; t++) {
      const a = await pipeline.answer(
        {
          prompt: `turn ${t}: and what happens next? ${textOfSize(300, "context")}`,
          max_tokens: 16,
          temperature: 0.7,
          conversation_id: conversation,
        },
        settings.answerTimeoutMs,
      );
      turnIds.push(a.id);
      turns.push([
        t,
        round(a.acceptMs),
        a.e2eMs !== undefined ? round(a.e2eMs) : a.timedOut ? "timed out" : `status ${a.status}`,
      ]);
      bar.tick();
    }
    bar.done();
    // The cache function assembles the conversation's context: its stage, from the SQS emulator's send times.
    const sent = sendTimes(stack.spy.getAllMessages());
    const requestsQueue = queueName(stack.prefix, "requests");
    const inferenceQueue = queueName(stack.prefix, "inference");
    turns.forEach((row, i) => {
      const times = turnIds[i] ? sent.get(turnIds[i]!) : undefined;
      const from = times?.get(requestsQueue);
      const to = times?.get(inferenceQueue);
      row.push(from !== undefined && to !== undefined ? to - from : "n/a");
    });
    const rssLine = FUNCTION_NAMES.map((n) => `${n} ${round(peak[n] ?? Number.NaN)}`).join(", ");
    const sizeFirst = bySize[0];
    const sizeLast = bySize.at(-1);
    return {
      status: "ok" as const,
      headline: [
        `peak RSS under load (MiB): ${rssLine}`,
        `accept p50 ${sizeFirst?.[1]} ms at ${sizeFirst?.[0]} B → ${sizeLast?.[1]} ms at ${sizeLast?.[0]} B (${sizeLast?.[2]}); ${byMessages[0]?.[1]} ms with ${byMessages[0]?.[0]} chat message(s) → ${byMessages.at(-1)?.[1]} ms with ${byMessages.at(-1)?.[0]}; a conversation's context assembly ${turns[0]?.[3]} ms at turn 1 → ${turns.at(-1)?.[3]} ms at turn ${turns.length}`,
      ],
      tables: [
        memory,
        {
          title: "Accept time vs body size (prompt text; 5 requests each, sequential)",
          columns: ["body bytes", "accept p50 ms", "answers"],
          rows: bySize,
        },
        {
          title: "Accept time vs chat messages in the body (200 B each)",
          columns: ["messages", "accept p50 ms", "answers"],
          rows: byMessages,
        },
        {
          title: "A stored conversation growing turn by turn (each turn waits for the previous answer)",
          columns: [
            "turn",
            "accept ms",
            "submit → result ms",
            "requests queue + cache (context assembly) ms",
          ],
          rows: turns,
        },
      ],
      charts: [],
      notes: [
        "Each function runs as its own `deepqueue serve <name>` process (Node + tsx, which itself costs ~50-80 MiB of the idle RSS); RSS read from /proc/<pid>/status every 200 ms.",
        "Bodies past the model's context window (4096 tokens) are refused with 400 prompt_too_long after tokenization: that cost is in the largest size's accept time.",
        "Conversation context is assembled by the cache function, not ingest: a longer conversation shows in submit → result, not in the accept time.",
      ],
      data: { idle, peak, burst, bySize, byMessages, turns },
    };
  },
};
