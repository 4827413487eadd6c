/**
 * The abuse bench: what a hostile but authenticated tenant costs everyone
 * else. Standalone and bounded (about three minutes on two cores), against
 * 127.0.0.1 only:
 *
 *   npx tsx bench/abuse.ts            # prints a JSON summary and a table
 *   npx tsx bench/abuse.ts --turns 60 # a shorter conversation
 *
 * 1. Refusing an oversized prompt (190 KB of words, refused on its token
 *    floor): p50 of sequential refusals.
 * 2. Normal accepts during a flood of eight oversized senders, with the abuse
 *    budget off (the worst case: every oversized prompt is parsed and counted)
 *    and on (the defaults), for two kinds of oversized prompt: words (refused
 *    on the floor) and single-letter runs (they pass the floor: counted on the
 *    tokenizer thread). p95 of the normal accepts and their 5xx count.
 * 3. A conversation of `--turns` turns through the whole pipeline with one
 *    ~3.5k-token turn at turn 2: the end-to-end time of turn 5 and of the last
 *    turn (medians of five turns around each), and whether a summary exists.
 *
 * The machine may be shared: compare ratios, not absolute milliseconds.
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { provisionTenant } from "../functions/shared/provision.ts";
import { DynamoTenantStore } from "../functions/shared/stores/tenants.ts";
import { countPromptTokens } from "../functions/shared/tokenizer.ts";
import { BenchError } from "./errors.ts";
import { createHttpClient, type HttpAnswer } from "./load.ts";
import { startBenchStack } from "./stack.ts";
import { median, ratio, round, summarize } from "./stats.ts";

const { values } = parseArgs({
  options: {
    turns: { type: "string", default: "200" },
    "flood-seconds": { type: "string", default: "10" },
  },
});
const TURNS = Math.max(10, Number(values.turns));
const FLOOD_MS = Math.max(2, Number(values["flood-seconds"])) * 1000;
const SENDERS = 8;

const WORDS = "lorem ipsum dolor sit amet ".repeat(7_000); // ~190 KB, ~35k tokens: refused on its floor
const LETTERS = "a".repeat(190_000); // passes the floor (2,969); really 23,750 tokens: counted off-loop

const stack = await startBenchStack({ simulator: { timeScale: 0.05, seed: 7 }, logLevel: "warn" });
// The hostile tenant is another tenant: its budget and rate limit are its own.
const attacker = await provisionTenant(
  {
    sqs: stack.sqs,
    tenants: new DynamoTenantStore(DynamoDBDocumentClient.from(stack.dynamo), stack.prefix),
    prefix: stack.prefix,
  },
  { tenant: "attacker", dailyRequests: null, dailyTokens: null },
);
const http = createHttpClient(64);
const report: Record<string, unknown> = {};

/** Posts `body` (pre-serialized when a string, so the load generator stays cheap). */
function post(url: string, body: unknown, apiKey = stack.apiKey): Promise<HttpAnswer> {
  return http.request(`${url}/v1/requests`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}` },
    body: typeof body === "string" ? body : JSON.stringify(body),
    timeoutMs: 30_000,
  });
}

function statuses(answers: HttpAnswer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) out[a.status] = (out[a.status] ?? 0) + 1;
  return out;
}

/** Eight senders post `prompt` back to back while one normal sender posts small prompts. */
/** CPU milliseconds a process has used so far (Linux /proc), or NaN elsewhere. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

async function flood(url: string, prompt: string, pid: number) {
  const body = JSON.stringify({ prompt, max_tokens: 16 });
  const cpuBefore = cpuMs(pid);
  const wallBefore = performance.now();
  const normal: HttpAnswer[] = [];
  let stop = false;
  const normalLoop = (async () => {
    let i = 0;
    while (!stop) {
      normal.push(await post(url, { prompt: `A normal question number ${i++}?`, max_tokens: 16 }));
      await sleep(50);
    }
  })();
  const oversized = await floodFromThread(url, body, attacker.api_key);
  stop = true;
  await normalLoop;
  const cpu = cpuMs(pid) - cpuBefore;
  const wall = performance.now() - wallBefore;
  const accepted = normal.filter((a) => a.status === 202).map((a) => a.ms);
  return {
    normal: { statuses: statuses(normal), accept_ms: summarize(accepted), p95_ms: p95(accepted) },
    normal_5xx: normal.filter((a) => a.status >= 500 || a.status === 0).length,
    oversized,
    // Ingest's main thread and tokenizer threads together: a share of one core, and per request.
    ingest_cpu_share_of_one_core: ratio(cpu, wall),
    ingest_cpu_ms_per_request: ratio(cpu, oversized.sent + normal.length),
  };
}

/**
 * The eight oversized senders run on a worker thread: their 190 KB bodies must
 * not slow this thread, which also runs the emulators normal accepts need.
 */
function floodFromThread(
  url: string,
  body: string,
  apiKey: string,
): Promise<{ sent: number; statuses: Record<string, number> }> {
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    const http = require("node:http");
    const { url, body, apiKey, senders, durationMs } = workerData;
    const agent = new http.Agent({ keepAlive: true, maxSockets: senders });
    const end = Date.now() + durationMs;
    const statuses = {};
    let sent = 0;
    const one = () => new Promise((resolve) => {
      const req = http.request(url + "/v1/requests", { method: "POST", agent, headers: {
        "content-type": "application/json", "content-length": Buffer.byteLength(body), authorization: "Bearer " + apiKey } },
        (res) => { res.resume(); res.on("end", () => { statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1; resolve(); }); });
      req.on("error", () => { statuses[0] = (statuses[0] || 0) + 1; resolve(); });
      req.end(body);
    });
    const sender = async () => { while (Date.now() < end) { sent++; await one(); } };
    Promise.all(Array.from({ length: senders }, sender)).then(() => { agent.destroy(); parentPort.postMessage({ sent, statuses }); });
  `;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, {
      eval: true,
      workerData: { url, body, apiKey, senders: SENDERS, durationMs: FLOOD_MS },
    });
    worker.once("message", (result) => {
      resolve(result);
      void worker.terminate();
    });
    worker.once("error", reject);
  });
}

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.max(0, Math.ceil(sorted.length * 0.95) - 1)] ?? Number.NaN);
}

try {
  // --- 1 and 2: ingest alone, abuse budget and rate limit off (worst case) -----------------
  let ingest = await stack.startFunction("ingest", {
    DEEPQUEUE_ABUSE_BUDGET: "0",
    DEEPQUEUE_RATE_LIMIT_PER_SECOND: "0",
  });
  for (let i = 0; i < 20; i++) await post(ingest.url, { prompt: "warm up", max_tokens: 8 });
  const baseline: number[] = [];
  for (let i = 0; i < 60; i++) baseline.push((await post(ingest.url, { prompt: `q${i}`, max_tokens: 8 })).ms);
  const refusals: HttpAnswer[] = [];
  const wordsBody = JSON.stringify({ prompt: WORDS, max_tokens: 16 });
  for (let i = 0; i < 40; i++) refusals.push(await post(ingest.url, wordsBody, attacker.api_key));
  const counted: HttpAnswer[] = [];
  const lettersBody = JSON.stringify({ prompt: LETTERS, max_tokens: 16 });
  for (let i = 0; i < 5; i++) counted.push(await post(ingest.url, lettersBody, attacker.api_key));
  report.refusal = {
    oversized_words: { statuses: statuses(refusals), ms: summarize(refusals.map((a) => a.ms)) },
    oversized_letters_counted_off_loop: {
      statuses: statuses(counted),
      ms: summarize(counted.map((a) => a.ms)),
    },
    normal_accept_ms_idle: summarize(baseline),
  };
  report.flood_budget_off = {
    words: await flood(ingest.url, WORDS, ingest.pid),
    letters: await flood(ingest.url, LETTERS, ingest.pid),
  };
  await stack.stopFunction("ingest", { kill: true });

  // --- 2 again with ingest's defaults (the bench stack turns the rate limit off for the
  // capacity scenarios; here it is set back to its default): the abuse budget refuses the flood cheaply.
  ingest = await stack.startFunction("ingest", { DEEPQUEUE_RATE_LIMIT_PER_SECOND: "100" });
  for (let i = 0; i < 20; i++) await post(ingest.url, { prompt: "warm up", max_tokens: 8 });
  report.flood_defaults = {
    words: await flood(ingest.url, WORDS, ingest.pid),
    letters: await flood(ingest.url, LETTERS, ingest.pid),
  };

  // --- 3: a long conversation through the pipeline -----------------------------------------
  await Promise.all(["cache", "batcher", "deliver"].map((n) => stack.startFunction(n as "cache")));
  const conversation_id = `bench-${Date.now()}`;
  const huge = "The committee reviewed every clause of the contract in detail. ".repeat(300);
  const turnText = (i: number) =>
    `Turn ${i}: a note about the weather, the sea and the mountains, and the number ${i * 7919}. `.repeat(10);
  const times: number[] = [];
  for (let i = 1; i <= TURNS; i++) {
    const started = performance.now();
    // The rate limit and the abuse budget stay on: one turn at a time is far below them.
    const answer = await post(ingest.url, {
      prompt: i === 2 ? huge : turnText(i),
      conversation_id,
      max_tokens: 32,
      temperature: 0.7,
    });
    if (answer.status !== 202) throw new BenchError(`turn ${i}: ${answer.status} ${answer.body}`);
    const { id } = JSON.parse(answer.body) as { id: string };
    for (;;) {
      const got = await http.request(`${ingest.url}/v1/requests/${id}`, {
        headers: { authorization: `Bearer ${stack.apiKey}` },
      });
      const status = (JSON.parse(got.body) as { status?: string }).status;
      if (status === "completed" || status === "failed") {
        if (status === "failed") throw new BenchError(`turn ${i} failed: ${got.body}`);
        break;
      }
      await sleep(10);
    }
    times.push(performance.now() - started);
  }
  const conversation = JSON.parse(
    (
      await http.request(`${ingest.url}/v1/conversations/${conversation_id}`, {
        headers: { authorization: `Bearer ${stack.apiKey}` },
      })
    ).body,
  ) as { summary?: string; messages: unknown[] };
  const early = median(times.slice(2, 7)); // turns 3-7, around turn 5
  const late = median(times.slice(-5));
  report.conversation = {
    turns: TURNS,
    big_turn_tokens: countPromptTokens({ prompt: huge }),
    turn5_ms: round(early),
    last_turn_ms: round(late),
    last_over_turn5: ratio(late, early),
    has_summary: Boolean(conversation.summary),
    messages_after_summary: conversation.messages.length,
  };

  const r = report as {
    refusal: { oversized_words: { ms: { p50: number } }; normal_accept_ms_idle: { p50: number } };
    flood_budget_off: Record<string, Flood>;
    flood_defaults: Record<string, Flood>;
  };
  type Flood = { normal: { p95_ms: number }; normal_5xx: number; ingest_cpu_share_of_one_core: number };
  const idleP95 = p95(baseline);
  console.log(JSON.stringify(report, null, 2));
  console.log(
    [
      "",
      `refusal of a 190 KB prompt, p50: ${round(r.refusal.oversized_words.ms.p50)} ms (idle accept p50 ${round(r.refusal.normal_accept_ms_idle.p50)} ms)`,
      ...(["flood_budget_off", "flood_defaults"] as const).flatMap((k) =>
        Object.entries(r[k]).map(
          ([kind, f]) =>
            `${k} (${kind}): normal accept p95 ${f.normal.p95_ms} ms (x${ratio(f.normal.p95_ms, idleP95)} of idle p95 ${idleP95} ms), normal 5xx ${f.normal_5xx}, ingest CPU ${f.ingest_cpu_share_of_one_core} of a core`,
        ),
      ),
      `conversation: turn ${TURNS} / turn 5 = ${(report.conversation as { last_over_turn5: number }).last_over_turn5}, summary: ${(report.conversation as { has_summary: boolean }).has_summary}`,
    ].join("\n"),
  );
} finally {
  http.close();
  await stack.stop();
}
