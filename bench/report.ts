import type { MachineInfo } from "./machine.ts";
import type { ScenarioResult, Table } from "./scenario.ts";
import type { BenchSettings } from "./settings.ts";

/** Everything one run wrote: the JSON file's shape. */
export interface BenchReport {
  schema: "deepqueue.bench/1";
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  mode: "full" | "quick";
  machine: MachineInfo;
  /** 1-minute load average when the run ended (the machine is shared: others' tests show here). */
  loadAverageAtEnd: number;
  /** The simulator's options as it ran (after defaults). */
  simulator: Record<string, unknown>;
  settings: BenchSettings;
  /** The ratios the README quotes, by name. */
  headline: Record<string, number | string | undefined>;
  caveats: string[];
  scenarios: ScenarioResult[];
}

const STATUS_TEXT = {
  ok: "measured",
  partial: "partly measured",
  not_available: "not available",
  error: "failed",
} as const;

/** How the report names each headline number. */
const HEADLINE_LABELS: Record<string, string> = {
  pipelineVsDirectThroughput: "pipeline ÷ direct to the model, throughput (goal ≥ 0.95)",
  deepqueueVsSyncGatewayThroughput:
    "deepqueue ÷ synchronous gateway, answers per second at the same offered load",
  acceptP50Ms: "deepqueue's time to 202 Accepted at that load, p50 ms",
  overheadMsAtLowLoad: "time deepqueue adds to one request at low load, ms",
  modelMsAtLowLoad: "the model's own time for that request, ms",
  cacheHitSpeedup: "model answer ÷ cache hit, p50 latency",
  batchingOnVsOff: "micro-batching on ÷ off, throughput",
  ingestVsFloor: "ingest ÷ a bare one-send handler, accepted requests per second",
  capacitySplitFastRatio: "capacity: pipeline ÷ a ≥ 50 req/s model, split processes (goal ≥ 0.95)",
  capacityDevFastRatio: "capacity: pipeline ÷ a ≥ 50 req/s model, under npm start (goal ≥ 0.95)",
  capacityFunctionsBareSends:
    "capacity: the four functions' CPU per request, in bare SendMessage calls (goal ≤ 4)",
  capacityAcceptP99Ms: "capacity: accept p99 at 64 producers, saturated, ms (goal ≤ 50)",
};

/** Italic as the formatter writes it: `_x_`, or `*x*` when x holds an underscore. */
function italic(text: string): string {
  return text.includes("_") ? `*${text}*` : `_${text}_`;
}

function cell(v: string | number): string {
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "n/a";
  // Trimmed: a Markdown table cell's own spaces are not kept, and biome would strip them.
  return v.trim().replace(/\|/g, "\\|");
}

/**
 * A GitHub table with its columns padded, as the repository's formatter
 * (biome) writes Markdown, so a generated report passes `npm run lint`.
 */
export function padTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${widths.map((w, i) => (cells[i] ?? "").padEnd(w)).join(" | ")} |`;
  return [line(header), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.map(line)];
}

export function markdownTable(table: Table): string {
  const lines = [];
  if (table.title) lines.push(italic(table.title), "");
  lines.push(
    ...padTable(
      table.columns.map(cell),
      table.rows.map((r) => r.map(cell)),
    ),
  );
  return lines.join("\n");
}

/**
 * The Markdown report. `chartPrefix` is how the report reaches the SVGs
 * (`""` beside them in results/, `"results/"` from bench/REPORT.md).
 */
export function renderMarkdown(report: BenchReport, chartPrefix: string): string {
  const m = report.machine;
  const sim = report.simulator;
  const out: string[] = [
    `# deepqueue benchmark — ${report.mode} run, ${report.startedAt}`,
    "",
    `Machine: ${m.cores} cores (${m.cpuModel})${m.cpuLimit ? `, cgroup limit ${m.cpuLimit} CPUs` : ""}, ${m.memoryGiB} GiB RAM (${m.freeMemoryGiB} free), Node ${m.node}, ${m.platform} ${m.kernel}; load average ${m.loadAverage1m} at the start and ${report.loadAverageAtEnd} at the end (above the core count means others' work shared the CPU). Took ${report.durationSeconds} s.`,
    "",
    `Model server: the deepqueue simulator (vLLM-like continuous batching) — max-num-seqs ${sim.maxNumSeqs}, inter-token ${sim.interTokenLatencyMs} ms, prefill ${sim.prefillOverheadMs} ms + ${sim.prefillTimePerTokenMs} ms/token, ×${sim.timeFactorUnderLoad} under full load, timeScale ${sim.timeScale}; ${report.settings.maxTokens} tokens per answer.`,
    "",
    `**Caveats.** ${report.caveats.join(" ")}`,
    "",
    "## At a glance",
    "",
    ...padTable(
      ["headline", "value"],
      Object.entries(HEADLINE_LABELS).map(([k, label]) => {
        const v = report.headline[k];
        return [label, v === undefined ? "not measured" : `**${cell(v)}**`];
      }),
    ),
    "",
    ...padTable(
      ["scenario", "status", "finding"],
      report.scenarios.map((s) => [
        `${s.number}. ${s.title}`,
        STATUS_TEXT[s.status],
        cell(s.headline.join("<br>") || (s.reason ?? "")),
      ]),
    ),
    "",
  ];
  for (const s of report.scenarios) {
    out.push(`## ${s.number}. ${s.title}`, "", italic(s.question), "");
    out.push(
      `Status: **${STATUS_TEXT[s.status]}**${s.reason ? ` — ${s.reason}` : ""} (${Math.round(s.durationMs / 1000)} s)`,
      "",
    );
    for (const line of s.headline) out.push(`- ${line}`);
    out.push("");
    for (const chart of s.charts) out.push(`![${chart}](${chartPrefix}${chart})`, "");
    for (const table of s.tables) out.push(markdownTable(table), "");
    for (const note of s.notes) out.push(`> ${note}`, ">");
    if (s.notes.length) out.pop();
    out.push("");
  }
  out.push(
    "---",
    "",
    `Raw numbers: the JSON file of this run. Reproduce: \`npm run bench\` (about 10 minutes) or \`npm run bench -- --quick\` (under 2).`,
    "",
  );
  return out.join("\n");
}
