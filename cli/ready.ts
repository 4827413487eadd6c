/**
 * How a `deepqueue` process started by another (`dev` forks one per
 * function, emulator and the simulator) says it is up: an IPC message with
 * the URLs it listens on. Without an IPC channel (a terminal, a container)
 * it does nothing.
 */
export const READY_MESSAGE = "deepqueue:ready";

export interface ReadyMessage {
  type: typeof READY_MESSAGE;
  /** What the process serves, by name: `url`, `metricsUrl`, `sqsEndpoint`, … */
  urls: Record<string, string>;
}

/** Set by `dev` in its children's environment. */
export const DEV_CHILD_VARIABLE = "DEEPQUEUE_DEV_CHILD";

/** True in a process `dev` forked: it reports over IPC, and `dev` prints the banner. */
function isDevChild(): boolean {
  return process.env[DEV_CHILD_VARIABLE] === "1" && typeof process.send === "function";
}

/**
 * Tells the `dev` that forked this process its URLs; returns true when it did (the command then
 * prints nothing of its own: `dev` prints one banner for all).
 *
 * @example if (!announceReady({ url: server.url })) print(`listening on ${server.url}`);
 */
export function announceReady(urls: Record<string, string>): boolean {
  if (!isDevChild()) return false;
  const message: ReadyMessage = { type: READY_MESSAGE, urls };
  process.send?.(message);
  return true;
}

/** Resolves on the first SIGINT or SIGTERM, or when the parent that forked this process goes away; a second signal exits at once. */
export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(143));
      resolve(signal);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    // Forked by `dev`: when the parent dies (even by SIGKILL) the IPC channel closes; stop too,
    // rather than hold the ports as an orphan.
    if (process.connected) process.once("disconnect", () => onSignal("SIGTERM"));
  });
}

/**
 * Runs `work` with a signal that aborts on the first of `signals` (Ctrl-C stops a long wait
 * cleanly, with the command's own message), and stops listening however it ends.
 *
 * @example await abortOnSignals(["SIGINT"], (signal) => redrive({ ...deps, signal }));
 */
export async function abortOnSignals<T>(
  signals: readonly NodeJS.Signals[],
  work: (signal: AbortSignal) => Promise<T>,
  reason?: () => unknown,
): Promise<T> {
  const abort = new AbortController();
  const stop = () => abort.abort(reason?.());
  for (const s of signals) process.once(s, stop);
  try {
    return await work(abort.signal);
  } finally {
    for (const s of signals) process.off(s, stop);
  }
}
