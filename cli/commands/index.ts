import type { Command } from "commander";

type Register = (program: Command) => void;

/**
 * Every command, in the order `deepqueue --help` lists them, each loaded only
 * when needed: `deepqueue serve ingest` must not load cdk8s, the emulators or
 * the simulator (a function container's cold start is what KEDA and Knative
 * wait for on a scale from zero).
 */
export const COMMANDS: ReadonlyArray<{ name: string; load: () => Promise<Register> }> = [
  { name: "dev", load: async () => (await import("./dev.ts")).registerDev },
  { name: "serve", load: async () => (await import("./serve.ts")).registerServe },
  { name: "emulators", load: async () => (await import("./emulators.ts")).registerEmulators },
  { name: "sim", load: async () => (await import("./sim.ts")).registerSim },
  { name: "bootstrap", load: async () => (await import("./bootstrap.ts")).registerBootstrap },
  { name: "keys", load: async () => (await import("./keys.ts")).registerKeys },
  { name: "submit", load: async () => (await import("./submit.ts")).registerSubmit },
  { name: "batch", load: async () => (await import("./batch.ts")).registerBatch },
  { name: "results", load: async () => (await import("./results.ts")).registerResults },
  { name: "redrive", load: async () => (await import("./redrive.ts")).registerRedrive },
  { name: "reconcile", load: async () => (await import("./reconcile.ts")).registerReconcile },
  { name: "dashboard", load: async () => (await import("./dashboard.ts")).registerDashboard },
  { name: "synth", load: async () => (await import("./synth.ts")).registerSynth },
  { name: "bench", load: async () => (await import("./bench.ts")).registerBench },
];
