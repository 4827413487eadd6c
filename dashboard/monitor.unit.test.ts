import type { SQSClient } from "@aws-sdk/client-sqs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../functions/shared/logger.ts";
import { PipelineMonitor } from "./monitor.ts";

/** A monitor over an SQS client that answers everything and counts GetQueueAttributes calls. */
function watchedMonitor() {
  let reads = 0;
  const sqs = {
    send: async (command: { constructor: { name: string }; input: { QueueName?: string } }) => {
      const kind = command.constructor.name;
      if (kind === "GetQueueUrlCommand") return { QueueUrl: `http://sqs.test/${command.input.QueueName}` };
      if (kind === "GetQueueAttributesCommand") {
        reads += 1;
        return { Attributes: { ApproximateNumberOfMessages: "0" } };
      }
      return {};
    },
  } as unknown as SQSClient;
  const monitor = new PipelineMonitor({
    sqs,
    tenants: { list: async () => [] },
    usage: { get: async () => ({ requests: 0, tokens: 0 }) as never },
    prefix: "t",
    modelMetricsUrls: [],
    logger: createLogger({ level: "silent" }),
    pollMs: 1_000,
    idlePollMs: 15_000,
  });
  return { monitor, polls: () => reads };
}

describe("the dashboard's poll pace", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("polls at the idle pace while no page is open, at once when one opens, then at the watched pace", async () => {
    vi.useFakeTimers();
    const { monitor, polls } = watchedMonitor();
    await monitor.start();
    const perPoll = polls();
    expect(perPoll).toBeGreaterThan(0);

    await vi.advanceTimersByTimeAsync(14_000);
    expect(polls()).toBe(perPoll); // unwatched: nothing before 15 s
    await vi.advanceTimersByTimeAsync(1_000);
    expect(polls()).toBe(2 * perPoll);

    const pushed: number[] = [];
    const unsubscribe = monitor.subscribe(() => pushed.push(polls()));
    await vi.advanceTimersByTimeAsync(0);
    expect(polls()).toBe(3 * perPoll); // a page opened: read now, not in 15 s
    expect(pushed).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(polls()).toBe(6 * perPoll); // watched: every second

    unsubscribe();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(polls()).toBe(7 * perPoll); // the poll already scheduled
    await vi.advanceTimersByTimeAsync(14_000);
    expect(polls()).toBe(7 * perPoll); // back to the idle pace
    await monitor.stop();
  });

  it("counts a request to the dashboard as watching for a minute", async () => {
    vi.useFakeTimers();
    const { monitor, polls } = watchedMonitor();
    await monitor.start();
    const perPoll = polls();
    monitor.watch();
    await vi.advanceTimersByTimeAsync(0);
    expect(polls()).toBe(2 * perPoll); // read at once
    await vi.advanceTimersByTimeAsync(59_000);
    expect(polls()).toBe(61 * perPoll); // every second for the minute
    await vi.advanceTimersByTimeAsync(15_000);
    expect(polls()).toBe(62 * perPoll); // then the idle pace
    await monitor.stop();
  });
});
