import { describe, expect, it } from "vitest";
import { DeepqueueError } from "../functions/shared/errors.ts";
import { numberIn, port, positiveNumber, UsageError, wholeNumber } from "./options.ts";

describe("the CLI's flag parsers", () => {
  it("port: 0 to 65535, naming the flag", () => {
    expect(port()("0")).toBe(0);
    expect(port("--port")("65535")).toBe(65535);
    expect(() => port("--port")("65536")).toThrow('--port must be 0-65535, got "65536"');
    expect(() => port()("http")).toThrow('port must be 0-65535, got "http"');
    expect(() => port()("1.5")).toThrow(UsageError);
  });

  it("wholeNumber: 1 and up, whole", () => {
    expect(wholeNumber("--max")("3")).toBe(3);
    expect(() => wholeNumber("--max")("0")).toThrow('--max must be a whole number ≥ 1, got "0"');
    expect(() => wholeNumber("--max")("2.5")).toThrow(UsageError);
  });

  it("positiveNumber: above 0, fractions allowed", () => {
    expect(positiveNumber("--rate")("0.5")).toBe(0.5);
    expect(() => positiveNumber("--rate")("0")).toThrow('--rate must be a number > 0, got "0"');
    expect(() => positiveNumber("--rate")("Infinity")).toThrow(UsageError);
  });

  it("numberIn: the range, and whole numbers when asked", () => {
    expect(numberIn("--temperature", { max: 2 })("1.2")).toBe(1.2);
    expect(() => numberIn("--temperature", { max: 2 })("2.1")).toThrow(
      '--temperature must be a number in 0..2, got "2.1"',
    );
    expect(() => numberIn("--max-tokens", { integer: true, min: 1, max: 8192 })("1.5")).toThrow(
      '--max-tokens must be a whole number in 1..8192, got "1.5"',
    );
  });

  it("a UsageError is a DeepqueueError", () => {
    const error = new UsageError("bad");
    expect(error).toBeInstanceOf(DeepqueueError);
    expect(error.name).toBe("UsageError");
  });
});
