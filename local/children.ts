import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { READY_MESSAGE, type ReadyMessage } from "../cli/ready.ts";
import { FUNCTION_NODE_FLAGS } from "../functions/runtime/node-flags.ts";
import { DevStackError } from "./errors.ts";

/**
 * `deepqueue` commands run as child processes of `dev`, so the functions, the
 * emulators and the simulator each have an event loop (and a core) of their
 * own, exactly as their containers would run them. Each child says it is up
 * with an IPC message carrying its URLs (cli/ready.ts); when `dev` dies, the
 * IPC channel closes and the children stop too.
 */

/** The CLI entry children run: the compiled build when this module is compiled, else the sources through tsx. */
function cliEntry(): { entry: string; execArgv: string[] } {
  const compiled = import.meta.url.endsWith(".js");
  return {
    entry: fileURLToPath(new URL(compiled ? "../cli/index.js" : "../cli/index.ts", import.meta.url)),
    execArgv: [...FUNCTION_NODE_FLAGS, ...(compiled ? [] : ["--import", "tsx"])],
  };
}

export interface ChildCommand {
  /** What the child is (logs, errors). */
  name: string;
  pid: number;
  /** The URLs it announced (`url`, `metricsUrl`, `sqsEndpoint`, …). */
  urls: Record<string, string>;
  /** SIGTERM, then SIGKILL after `killAfterMs`; resolves when it has exited. Safe to call twice. */
  stop(killAfterMs?: number): Promise<void>;
}

export interface StartChildOptions {
  name: string;
  /** `deepqueue` arguments, e.g. `["serve", "ingest", "--port", "0"]`. */
  args: string[];
  env: NodeJS.ProcessEnv;
  /** How long the child may take to announce itself. @default 120000 */
  readyTimeoutMs?: number;
}

/**
 * Forks `deepqueue <args>` and resolves once it announced its URLs. Its output
 * goes to this process's stdout and stderr. It runs in a process group of its
 * own, so a terminal's Ctrl-C reaches only `dev`, which then stops the
 * children in order (ingest first, the emulators last).
 *
 * @example const ingest = await startChild({ name: "ingest", args: ["serve", "ingest"], env });
 */
export function startChild(options: StartChildOptions): Promise<ChildCommand> {
  const { entry, execArgv } = cliEntry();
  const child: ChildProcess = fork(entry, options.args, {
    env: options.env,
    execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    detached: true,
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stopping: Promise<void> | undefined;
  const stop = (killAfterMs = 5000) => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
        await exited;
        clearTimeout(timer);
      }
      if (child.connected) child.disconnect();
    })();
    return stopping;
  };
  return new Promise<ChildCommand>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop(0);
      reject(
        new DevStackError(`${options.name} did not start within ${options.readyTimeoutMs ?? 120_000} ms`),
      );
    }, options.readyTimeoutMs ?? 120_000);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      reject(
        new DevStackError(
          `${options.name} exited before it was ready (${signal ?? `code ${code}`}); see its output above`,
        ),
      );
    };
    child.once("exit", onExit);
    child.on("message", (message: unknown) => {
      const ready = message as Partial<ReadyMessage>;
      if (ready?.type !== READY_MESSAGE) return;
      clearTimeout(timer);
      child.off("exit", onExit);
      resolve({ name: options.name, pid: child.pid!, urls: ready.urls ?? {}, stop });
    });
  });
}
