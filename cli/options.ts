import { DeepqueueError } from "../functions/shared/errors.ts";

/** Bad command-line input: the message names the flag or argument and what it takes. */
export class UsageError extends DeepqueueError {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Commander parsers for the flags several commands share; each throws a
 * `UsageError` naming the flag and the value it got.
 */

/** A TCP port, 0 (any free port) to 65535. @example new Option("--port <n>").argParser(port("--port")) */
export function port(flag = "port") {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new UsageError(`${flag} must be 0-65535, got "${value}"`);
    return n;
  };
}

/** A whole number ≥ 1. @example program.option("--max <n>", "…", wholeNumber("--max")) */
export function wholeNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`${flag} must be a whole number ≥ 1, got "${value}"`);
    return n;
  };
}

/** A number > 0. @example program.option("--rate <n>", "…", positiveNumber("--rate")) */
export function positiveNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a number > 0, got "${value}"`);
    return n;
  };
}

/** A number in `min..max`, whole when `integer`. @example numberIn("--temperature", { max: 2 }) */
export function numberIn(flag: string, { integer = false, min = 0, max = Number.POSITIVE_INFINITY } = {}) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new UsageError(
        `${flag} must be ${integer ? "a whole number" : "a number"} in ${min}..${max}, got "${value}"`,
      );
    }
    return n;
  };
}
