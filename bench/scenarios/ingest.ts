import { closedLoop, type HttpAnswer } from "../load.ts";
import { type BenchContext, notAvailable, promptFor, type Scenario } from "../scenario.ts";
import { round, summarize } from "../stats.ts";
import { lineChart } from "../svg.ts";

interface IngestPoint {
  concurrency: number;
  accepted: number;
  other: number;
  perSecond: number;
  p50: number;
  p99: number;
}

async function measure(
  ctx: BenchContext,
  url: string,
  headers: Record<string, string>,
  concurrency: number,
  tag: string,
): Promise<IngestPoint> {
  const { settings, http } = ctx;
  const run = await closedLoop<HttpAnswer>({
    concurrency,
    total: settings.ingestRequestsPerPoint,
    task: (i) =>
      http.request(url, {
        method: "POST",
        headers,
        body: JSON.stringify({ prompt: promptFor(tag, i), max_tokens: settings.maxTokens, temperature: 0.7 }),
        timeoutMs: 30_000,
      }),
  });
  const ok = run.results.filter((r) => r.status === 202);
  const lat = summarize(ok.map((r) => r.ms));
  return {
    concurrency,
    accepted: ok.length,
    other: run.results.length - ok.length,
    perSecond: round((ok.length / run.elapsedMs) * 1000),
    p50: round(lat.p50),
    p99: round(lat.p99),
  };
}

export const ingestScenario: Scenario = {
  id: "ingest",
  number: 1,
  title: "Ingest: accepting a request vs the floor",
  question:
    "Accepted requests per second and p50/p99 time to 202 at a few concurrencies, against the floor: a bare handler behind the same HTTP adapter that only sends one SQS message.",
  async run(ctx) {
    if (!ctx.ingestUrl) return notAvailable(`ingest is not running (${ctx.stack.functionsUnavailable})`);
    const floor = await ctx.stack.startFloor();
    try {
      const bar = ctx.progress("1 ingest", ctx.settings.ingestConcurrencies.length * 2);
      const ingest: IngestPoint[] = [];
      const bare: IngestPoint[] = [];
      for (const c of ctx.settings.ingestConcurrencies) {
        bar.label(`ingest c=${c}`);
        ingest.push(
          await measure(
            ctx,
            `${ctx.ingestUrl}/v1/requests`,
            { authorization: `Bearer ${ctx.stack.apiKey}` },
            c,
            `ingest-${c}`,
          ),
        );
        bar.tick();
        bar.label(`floor c=${c}`);
        bare.push(await measure(ctx, `${floor.url}/v1/requests`, {}, c, `floor-${c}`));
        bar.tick();
      }
      bar.done();
      const best = ingest.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
      const bestFloor = bare.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
      const ratio = round(best.perSecond / bestFloor.perSecond);
      const low = ingest[0]!;
      const lowFloor = bare[0]!;
      ctx.shared.set("ingestRatio", ratio);
      ctx.shared.set("ingestP50", low.p50);
      const chart = ctx.chart(
        "ingest",
        lineChart({
          title: "Accepted requests per second: ingest vs the floor",
          xLabel: "concurrent producers",
          yLabel: "202 Accepted / s",
          xLog: true,
          series: [
            {
              name: "ingest (auth, validation, quota, record, send)",
              points: ingest.map((p) => [p.concurrency, p.perSecond]),
            },
            { name: "floor (one SQS send)", points: bare.map((p) => [p.concurrency, p.perSecond]) },
          ],
        }),
      );
      return {
        status: "ok" as const,
        headline: [
          `ingest accepts **${best.perSecond} req/s** (c=${best.concurrency}) = **${ratio}×** the floor's ${bestFloor.perSecond} req/s; p50 accept ${low.p50} ms vs floor ${lowFloor.p50} ms at c=${low.concurrency}`,
        ],
        tables: [
          {
            columns: [
              "concurrency",
              "ingest 202/s",
              "ingest p50 ms",
              "ingest p99 ms",
              "floor 202/s",
              "floor p50 ms",
              "floor p99 ms",
              "ingest/floor req/s",
              "non-202",
            ],
            rows: ingest.map((p, i) => {
              const f = bare[i]!;
              return [
                p.concurrency,
                p.perSecond,
                p.p50,
                p.p99,
                f.perSecond,
                f.p50,
                f.p99,
                round(p.perSecond / f.perSecond),
                p.other + f.other,
              ];
            }),
          },
        ],
        charts: [chart],
        notes: [
          "Each process (ingest, floor) is its own `node` child with the same HTTP adapter; the emulators run in the bench process. The queue workers are not running during this scenario, so these are ingest's own costs; the accepted requests are purged afterwards.",
          "Ingest per request: API-key lookup (cached), validation and token count, the daily quota (a conditional DynamoDB ADD), the request record (a conditional put), and the SQS send.",
        ],
        data: { ingest, floor: bare, ratio },
      };
    } finally {
      await floor.stop();
    }
  },
};
