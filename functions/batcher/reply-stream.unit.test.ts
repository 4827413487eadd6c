import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type DeltaMessage, ReplyStream } from "./reply-stream.ts";

describe("ReplyStream (the streaming coalescer)", () => {
  let sent: DeltaMessage[];
  let stream: ReplyStream;
  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
    stream = new ReplyStream(
      "req_1",
      async (delta) => {
        sent.push(delta);
      },
      100,
      () => Date.now(),
    );
  });
  afterEach(() => vi.useRealTimers());

  it("sends the first text at once, then at most one delta per interval", async () => {
    stream.push("Hello");
    expect(sent.map((d) => d.text)).toEqual(["Hello"]);
    // A token every 10 ms for 300 ms: 30 tokens, about three more messages.
    for (let i = 0; i < 30; i++) {
      await vi.advanceTimersByTimeAsync(10);
      stream.push(` t${i}`);
    }
    await stream.close();
    expect(sent.length).toBeGreaterThanOrEqual(3);
    expect(sent.length).toBeLessThanOrEqual(5);
    expect(sent.map((d) => d.seq)).toEqual(sent.map((_, n) => n));
    expect(sent.map((d) => d.text).join("")).toBe(
      `Hello${Array.from({ length: 30 }, (_, i) => ` t${i}`).join("")}`,
    );
    expect(sent.every((d) => d.type === "delta" && d.request_id === "req_1")).toBe(true);
  });

  it("sends gathered text when the interval ends, without waiting for more tokens", async () => {
    stream.push("a");
    stream.push("b");
    expect(sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(sent.map((d) => d.text)).toEqual(["a", "b"]);
  });

  it("skips empty text, and abandon drops what is gathered", async () => {
    stream.push("");
    expect(stream.sent).toBe(0);
    stream.push("shown");
    stream.push(" never");
    stream.abandon();
    await vi.advanceTimersByTimeAsync(500);
    expect(sent.map((d) => d.text)).toEqual(["shown"]);
    expect(stream.sent).toBe(1);
  });

  it("close waits for every send", async () => {
    let release!: () => void;
    const slow = new ReplyStream("req_2", () => new Promise<void>((r) => (release = r)), 100);
    slow.push("x");
    let closed = false;
    const closing = slow.close().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toBe(false);
    release();
    await closing;
    expect(closed).toBe(true);
  });
});
