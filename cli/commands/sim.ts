import { type Command, Option } from "commander";
import { FAILURE_TYPES, type FailureType, SIM_DEFAULTS, type SimOptions } from "../../local/sim/options.ts";
import { startSimulator } from "../../local/sim/server.ts";
import { numberIn, UsageError } from "../options.ts";
import { print } from "../output.ts";
import { announceReady, waitForSignal } from "../ready.ts";

/** "15ms", "1.5s", "0.1ms" or a bare number of milliseconds. */
export function parseDurationMs(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m)?$/.exec(value.trim());
  if (!match) throw new UsageError(`expected a duration such as 15ms or 1.5s, got "${value}"`);
  const unit = { us: 0.001, µs: 0.001, ms: 1, s: 1000, m: 60_000 }[(match[2] ?? "ms") as "ms"];
  return Number(match[1]) * unit;
}

function failureTypes(value: string): FailureType[] {
  const types = value.split(",").map((t) => t.trim());
  for (const t of types) {
    if (!(FAILURE_TYPES as readonly string[]).includes(t)) {
      throw new UsageError(`--failure-types: unknown type "${t}" (known: ${FAILURE_TYPES.join(", ")})`);
    }
  }
  return types as FailureType[];
}

const d = SIM_DEFAULTS;

function duration(flags: string, description: string, defaultMs: number): Option {
  return new Option(flags, `${description} (e.g. 15ms, 1.5s)`)
    .argParser(parseDurationMs)
    .default(defaultMs, `${defaultMs}ms`);
}

/** `deepqueue sim`: the model-server simulator alone, until SIGINT/SIGTERM. */
export function registerSim(program: Command): void {
  const command = program
    .command("sim")
    .description(
      "the OpenAI-compatible model-server simulator alone (vLLM's API, metrics, latency and failures)",
    )
    .option(
      "--port <port>",
      "listen port (0 = any free port)",
      numberIn("--port", { integer: true, max: 65535 }),
      d.port,
    );
  modelFlags(command);
  latencyFlags(command);
  failureFlags(command);
  command
    .addHelpText(
      "after",
      [
        "",
        "Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics,",
        'GET /sim/stats, POST /sim/stats/reset, GET|POST /sim/config (e.g. {"down": true} or {"failureRate": 0.2}).',
        "Defaults resemble one A100-80GB serving a 7B model with vLLM; see docs/simulator.md.",
      ].join("\n"),
    )
    .action((flags: Record<string, unknown>) => runSim(simOptionsFrom(flags)));
}

/** What the simulated server serves: address, models, context, batch and KV cache. */
function modelFlags(command: Command): void {
  command
    .option("--host <host>", "interface to listen on", d.host)
    .option(
      "--served-model-name <names>",
      "comma-separated model names served",
      (v: string) => v.split(",").map((s) => s.trim()),
      d.servedModelNames,
    )
    .option(
      "--max-model-len <tokens>",
      "context window (prompt + max_tokens)",
      numberIn("--max-model-len", { integer: true, min: 16 }),
      d.maxModelLen,
    )
    .option(
      "--max-num-seqs <n>",
      "sequences decoded at once",
      numberIn("--max-num-seqs", { integer: true, min: 1 }),
      d.maxNumSeqs,
    )
    .option(
      "--max-waiting-queue-length <n>",
      "sequences allowed to wait; beyond it 429",
      numberIn("--max-waiting-queue-length", { integer: true }),
      d.maxWaitingQueueLength,
    )
    .option(
      "--kv-cache-tokens <n>",
      "KV-cache capacity in tokens",
      numberIn("--kv-cache-tokens", { integer: true, min: 16 }),
      d.kvCacheTokens,
    );
}

/** How fast it answers. */
function latencyFlags(command: Command): void {
  command
    .addOption(
      duration("--prefill-overhead <duration>", "fixed prefill time per sequence", d.prefillOverheadMs),
    )
    .addOption(
      duration(
        "--prefill-time-per-token <duration>",
        "prefill time per prompt token",
        d.prefillTimePerTokenMs,
      ),
    )
    .addOption(
      duration(
        "--inter-token-latency <duration>",
        "time per output token, one sequence alone",
        d.interTokenLatencyMs,
      ),
    )
    .option(
      "--time-factor-under-load <x>",
      "latency multiplier at max-num-seqs running (≥ 1)",
      numberIn("--time-factor-under-load", { min: 1 }),
      d.timeFactorUnderLoad,
    )
    .option(
      "--time-scale <x>",
      "multiplies every latency (0.01 = 100x faster, 0 = instant)",
      numberIn("--time-scale"),
      d.timeScale,
    );
}

/** How it fails, and whether it wants a key. */
function failureFlags(command: Command): void {
  command
    .option(
      "--failure-rate <p>",
      "probability 0..1 that a request fails",
      numberIn("--failure-rate", { max: 1 }),
      d.failureRate,
    )
    .option(
      "--failure-types <list>",
      `comma-separated: ${FAILURE_TYPES.join(", ")}`,
      failureTypes,
      d.failureTypes,
    )
    .addOption(
      duration(
        "--slow-response <duration>",
        "how long a 'timeout' failure holds the request",
        d.slowResponseMs,
      ),
    )
    .option(
      "--retry-after <seconds>",
      "Retry-After sent with 429 and 503",
      numberIn("--retry-after", { integer: true }),
      d.retryAfterSeconds,
    )
    .option(
      "--seed <n>",
      "seed of the failure dice",
      numberIn("--seed", { integer: true, min: Number.MIN_SAFE_INTEGER }),
      d.seed,
    )
    .option("--api-key <key>", "require Authorization: Bearer <key> on /v1 (as vLLM --api-key)");
}

/** The parsed flags as simulator options (most flags are the option's name; durations end in Ms). */
function simOptionsFrom(flags: Record<string, unknown>): Partial<SimOptions> {
  const {
    servedModelName,
    prefillOverhead,
    prefillTimePerToken,
    interTokenLatency,
    slowResponse,
    retryAfter,
    ...same
  } = flags;
  return {
    ...(same as Partial<SimOptions>),
    servedModelNames: servedModelName as string[],
    prefillOverheadMs: prefillOverhead as number,
    prefillTimePerTokenMs: prefillTimePerToken as number,
    interTokenLatencyMs: interTokenLatency as number,
    slowResponseMs: slowResponse as number,
    retryAfterSeconds: retryAfter as number,
  };
}

/** Starts the simulator, prints how to use it, and stops it on a signal. */
async function runSim(options: Partial<SimOptions>): Promise<never> {
  const sim = await startSimulator(options);
  const quiet = announceReady({ url: sim.url });
  const root = sim.url.replace(/\/v1$/, "");
  if (!quiet) {
    print(`simulator   ${sim.url}   (models: ${sim.options.servedModelNames.join(", ")})`);
    print(`metrics     ${root}/metrics`);
    print(`control     ${root}/sim/config   ${root}/sim/stats`);
    print("");
    print(`export INFERENCE_URL=${sim.url}`);
    print(
      `curl -s ${sim.url}/completions -H 'content-type: application/json' -d '{"model":"${sim.options.servedModelNames[0]}","prompt":"Hello","max_tokens":16}'`,
    );
    print("\nCtrl-C stops it.");
  }
  await waitForSignal();
  await sim.stop();
  if (!quiet) print("stopped");
  // Forked by dev, the IPC channel would keep the process alive.
  process.exit(0);
}
