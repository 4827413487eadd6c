/**
 * The throughput bench's stand-ins for remote services, each on a worker thread of its own:
 * the emulators (SQS and DynamoDB) and the model-server simulator (a GPU server), so that their
 * CPU is not the pipeline's. This module is also the threads' entry point.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { startEmulators } from "../local/emulators.ts";
import { type SimStats, startSimulator } from "../local/sim/server.ts";

/** The simulator as the bench drives it, wherever it runs. */
export interface BenchSimulator {
  url: string;
  stats(): Promise<SimStats>;
  resetStats(): Promise<unknown>;
  stop(): Promise<void>;
}

export async function inThreadSimulator(timeScale: number): Promise<BenchSimulator> {
  const sim = await startSimulator({ port: 0, host: "127.0.0.1", timeScale });
  return {
    url: sim.url,
    stats: async () => sim.stats(),
    resetStats: async () => sim.resetStats(),
    stop: () => sim.stop(),
  };
}

/**
 * The emulators on their own thread: they stand for SQS and DynamoDB, remote
 * services in production, so their CPU is not the pipeline's.
 */
export async function startEmulatorsThread() {
  const worker = new Worker(new URL(import.meta.url), { workerData: { throughputEmulators: true } });
  const endpoints = await new Promise<{ sqsEndpoint: string; dynamoEndpoint: string }>((resolve, reject) => {
    worker.once("error", reject);
    worker.once("message", resolve);
  });
  return {
    ...endpoints,
    async stop() {
      worker.postMessage("stop");
      await new Promise((resolve) => worker.once("message", resolve));
      await worker.terminate();
    },
  };
}

/**
 * The simulator on its own thread: it stands for a GPU server, so the
 * pipeline's CPU work in this process must not slow its clock (it would in a
 * shared event loop, and only in the pipeline run, biasing the ratio).
 */
export async function startSimulatorThread(timeScale: number): Promise<BenchSimulator> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { throughputSim: { timeScale } } });
  const replies = new Map<number, (value: unknown) => void>();
  let next = 0;
  const ready = new Promise<string>((resolve, reject) => {
    worker.once("error", reject);
    worker.on("message", (msg: { url?: string; id?: number; value?: unknown }) => {
      if (msg.url) resolve(msg.url);
      else if (msg.id !== undefined) replies.get(msg.id)?.(msg.value);
    });
  });
  const call = (op: "stats" | "reset" | "stop") =>
    new Promise<unknown>((resolve) => {
      const id = next++;
      replies.set(id, resolve);
      worker.postMessage({ id, op });
    });
  const url = await ready;
  return {
    url,
    stats: () => call("stats") as Promise<SimStats>,
    resetStats: () => call("reset"),
    async stop() {
      await call("stop");
      await worker.terminate();
    },
  };
}

if (!isMainThread && (workerData as { throughputEmulators?: boolean })?.throughputEmulators) {
  const emulators = await startEmulators({ sqsPort: 0, dynamoPort: 0 });
  parentPort!.once("message", async () => {
    await emulators.stop();
    parentPort!.postMessage("stopped");
  });
  parentPort!.postMessage({ sqsEndpoint: emulators.sqsEndpoint, dynamoEndpoint: emulators.dynamoEndpoint });
}

if (!isMainThread && (workerData as { throughputSim?: { timeScale: number } })?.throughputSim) {
  const { timeScale } = (workerData as { throughputSim: { timeScale: number } }).throughputSim;
  const sim = await startSimulator({ port: 0, host: "127.0.0.1", timeScale });
  parentPort!.on("message", async (msg: { id: number; op: string }) => {
    let value: unknown;
    if (msg.op === "stats") value = sim.stats();
    if (msg.op === "reset") sim.resetStats();
    if (msg.op === "stop") await sim.stop();
    parentPort!.postMessage({ id: msg.id, value });
  });
  parentPort!.postMessage({ url: sim.url });
}
