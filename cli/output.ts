/** Writes a line to stdout. Commands print through this so tests can capture output. */
export function print(line = ""): void {
  process.stdout.write(`${line}\n`);
}
