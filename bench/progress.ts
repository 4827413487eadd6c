/**
 * A progress bar per scenario on stderr. Hand-written (40 lines) rather than
 * a dependency: the bench needs one bar at a time, a label and a count, and
 * must stay quiet and line-based when stderr is not a terminal (CI logs, the
 * test that runs `bench --quick`).
 */
export interface Progress {
  /** Adds `n` finished units. */
  tick(n?: number): void;
  /** Changes what the bar says it is doing. */
  label(text: string): void;
  /** Ends the bar with a closing note. */
  done(note?: string): void;
}

const WIDTH = 24;

/** @example const bar = progress("2 throughput", 300); bar.tick(); bar.done("26 req/s"); */
export function progress(
  title: string,
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  const tty = Boolean(stream.isTTY);
  const started = Date.now();
  let count = 0;
  let text = "";
  let lastLine = 0;
  let lastText = "";
  const render = (final = false) => {
    const fraction = total > 0 ? Math.min(1, count / total) : 1;
    const filled = Math.round(fraction * WIDTH);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    const line = `${title.padEnd(22)} [${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}% ${seconds}s ${text}`;
    if (tty) stream.write(`\r\x1b[2K${line}${final ? "\n" : ""}`);
    else if ((final || Date.now() - lastLine > 5000) && line !== lastText) {
      lastLine = Date.now();
      lastText = line;
      stream.write(`${line}\n`);
    }
  };
  render();
  return {
    tick(n = 1) {
      count += n;
      render();
    },
    label(next) {
      text = next;
      render();
    },
    done(note) {
      count = total;
      if (note !== undefined) text = note;
      render(true);
    },
  };
}
