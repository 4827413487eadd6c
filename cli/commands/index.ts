import type { Command } from "commander";
import { registerBench } from "./bench.ts";
import { registerBootstrap } from "./bootstrap.ts";
import { registerDashboard } from "./dashboard.ts";
import { registerDev } from "./dev.ts";
import { registerEmulators } from "./emulators.ts";
import { registerKeys } from "./keys.ts";
import { registerReconcile } from "./reconcile.ts";
import { registerRedrive } from "./redrive.ts";
import { registerResults } from "./results.ts";
import { registerServe } from "./serve.ts";
import { registerSim } from "./sim.ts";
import { registerSubmit } from "./submit.ts";
import { registerSynth } from "./synth.ts";

/** Every command, in the order `deepqueue --help` lists them (SPEC §5). */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerDev,
  registerServe,
  registerEmulators,
  registerSim,
  registerBootstrap,
  registerKeys,
  registerSubmit,
  registerResults,
  registerRedrive,
  registerReconcile,
  registerDashboard,
  registerSynth,
  registerBench,
];
