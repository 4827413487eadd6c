import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { FUNCTION_NODE_FLAGS } from "../functions/runtime/node-flags.ts";
import { BenchError } from "./errors.ts";
import { createHttpClient } from "./load.ts";

/**
 * Processes as the capacity bench sees them: started from the `deepqueue`
 * CLI (the compiled build when there is one, else the TypeScript through
 * tsx), measured from /proc (their own CPU time, peak RSS), and stopped.
 */

/** Kernel clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

/** CPU milliseconds (user + system) a process has used so far; undefined when it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Peak resident set size (VmHWM) in MiB; undefined when the process is gone. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The command line of a process, arguments joined by spaces. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** Every descendant of `pid` (children, their children…), from /proc/<pid>/task/<tid>/children. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const visit = (parent: number) => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      return;
    }
    for (const tid of tasks) {
      let children = "";
      try {
        children = readFileSync(`/proc/${parent}/task/${tid}/children`, "utf8");
      } catch {
        continue;
      }
      for (const child of children.split(" ").filter(Boolean).map(Number)) {
        out.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return out;
}

export interface CliProcess {
  pid: number;
  child: ChildProcess;
  logFile: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** How `deepqueue` is started: the compiled build (`build/cli/index.js`) or the sources through tsx. */
function cliArgs(repoRoot: string, compiled: boolean): string[] {
  const built = join(repoRoot, "build/cli/index.js");
  if (compiled) {
    if (!existsSync(built)) throw new BenchError("no compiled build: run `npm run build` first");
    // The bin, as the image's entrypoint: it runs build/ with V8's compile cache on.
    return [join(repoRoot, "bin/deepqueue.js")];
  }
  return ["--import", "tsx", join(repoRoot, "cli/index.ts")];
}

/** Spawns `deepqueue <args>` with `env` (merged over a minimal base), logging to `logFile`. */
export function spawnCli(options: {
  repoRoot: string;
  compiled: boolean;
  args: string[];
  env: Record<string, string>;
  logFile: string;
}): CliProcess {
  const args = [...FUNCTION_NODE_FLAGS, ...cliArgs(options.repoRoot, options.compiled), ...options.args];
  const child = spawn(process.execPath, args, {
    cwd: options.repoRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...options.env },
    // An IPC channel: when this process dies (a killed run, a timed-out test), the channel closes
    // and the child stops (deepqueue commands stop on disconnect) instead of staying an orphan.
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const log = createWriteStream(options.logFile, { flags: "a" });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  return { pid: child.pid!, child, logFile: options.logFile, stop: (signal) => stopChild(child, signal) };
}

/** Resolves when `url` answers 200, polling every 20 ms; throws when the process exits or time runs out. */
export async function waitForHttp(
  proc: Pick<CliProcess, "child" | "logFile">,
  url: string,
  timeoutMs = 90_000,
): Promise<void> {
  const http = createHttpClient(1);
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (proc.child.exitCode !== null) {
        const tail = existsSync(proc.logFile) ? readFileSync(proc.logFile, "utf8").slice(-1200) : "";
        throw new BenchError(`${url}: the process exited with ${proc.child.exitCode}: ${tail}`);
      }
      const answer = await http.request(url, { timeoutMs: 1000 });
      if (answer.status === 200) return;
      await sleep(20);
    }
    throw new BenchError(`${url} did not answer 200 within ${timeoutMs} ms`);
  } finally {
    http.close();
  }
}

/** Stops a child: `signal`, then SIGKILL after 10 s. */
export function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
