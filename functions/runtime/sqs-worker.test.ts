import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { STREAM_ATTRIBUTE, streamsAnswer } from "../shared/record-parsing.ts";
import { retryLater } from "../shared/retries.ts";
import { createSqsWorker, type SqsHandler } from "./sqs-worker.ts";
import { serveWorkerEndpoints } from "./worker-endpoints.ts";

let stack: TestStack;
let n = 0;

beforeAll(async () => {
  stack = await startTestStack({ bootstrap: false });
});
afterAll(() => stack.stop());

async function newQueue(visibility = 30, attributes: Record<string, string> = {}): Promise<string> {
  n += 1;
  const out = await stack.sqs.send(
    new CreateQueueCommand({
      QueueName: `worker-test-${n}`,
      Attributes: { VisibilityTimeout: String(visibility), ...attributes },
    }),
  );
  return out.QueueUrl!;
}

const nameOf = (url: string) => url.split("/").pop()!;

async function send(sqs: SQSClient, queueUrl: string, bodies: string[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: bodies.slice(i, i + 10).map((body, k) => ({ Id: String(k), MessageBody: body })),
      }),
    );
  }
}

async function depth(queueUrl: string): Promise<{ visible: number; hidden: number }> {
  const out = await stack.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return {
    visible: Number(out.Attributes?.ApproximateNumberOfMessages ?? 0),
    hidden: Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

/** Polls until `check` holds (expect.poll), instead of sleeping a guessed time. */
const until = (check: () => boolean | Promise<boolean>, timeout = 15_000) =>
  expect.poll(check, { timeout, interval: 25 }).toBe(true);

/** A promise the test resolves: a handler that runs until the test lets it finish. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

describe("sqs worker", () => {
  it("hands Lambda-shaped batches of at most batchSize to the handler and deletes what succeeded", async () => {
    const queueUrl = await newQueue();
    const bodies = Array.from({ length: 25 }, (_, i) => `m${i}`);
    await send(stack.sqs, queueUrl, bodies);
    const seen: string[] = [];
    const sizes: number[] = [];
    let sample: SQSEvent["Records"][number] | undefined;
    const worker = createSqsWorker({
      name: "t1",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 1,
      batchSize: 10,
      maxBatchingWindowMs: 50,
      handler: async (event) => {
        sizes.push(event.Records.length);
        sample ??= event.Records[0];
        for (const r of event.Records) seen.push(r.body);
        return { batchItemFailures: [] };
      },
    });
    await worker.start();
    await until(() => seen.length >= 25);
    await worker.stop();
    expect(new Set(seen)).toEqual(new Set(bodies));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    expect(sizes.some((s) => s > 1)).toBe(true);
    expect(sample?.eventSource).toBe("aws:sqs");
    expect(sample?.eventSourceARN).toMatch(/^arn:aws:sqs:/);
    expect(sample?.attributes.ApproximateReceiveCount).toBe("1");
    await until(async () => (await depth(queueUrl)).visible + (await depth(queueUrl)).hidden === 0);
  });

  it("hands a batch over at once, without its batching window, when it holds a message that skips the window", async () => {
    const queueUrl = await newQueue();
    const batches: Array<{ bodies: string[]; at: number }> = [];
    const windowMs = 4000;
    const worker = createSqsWorker({
      name: "t-skip",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 1,
      batchSize: 10,
      maxBatchingWindowMs: windowMs,
      skipsWindow: streamsAnswer,
      handler: async (event) => {
        batches.push({ bodies: event.Records.map((r) => r.body), at: Date.now() });
        return { batchItemFailures: [] };
      },
    });
    await worker.start();
    // An ordinary message waits out the window for company…
    let sent = Date.now();
    await send(stack.sqs, queueUrl, ["plain"]);
    await until(() => batches.length === 1);
    expect(batches[0]!.at - sent).toBeGreaterThanOrEqual(windowMs - 100);
    // …a streamed one goes at once: long before the same window could have ended.
    sent = Date.now();
    await stack.sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: "streamed",
        MessageAttributes: { [STREAM_ATTRIBUTE]: { DataType: "String", StringValue: "true" } },
      }),
    );
    await until(() => batches.length === 2);
    await worker.stop();
    expect(batches[1]!.bodies).toEqual(["streamed"]);
    expect(batches[1]!.at - sent).toBeLessThan(windowMs / 2);
  });

  it("returns only the records named in batchItemFailures to the queue", async () => {
    const queueUrl = await newQueue(1);
    await send(stack.sqs, queueUrl, ["ok-1", "bad", "ok-2"]);
    const receives = new Map<string, number>();
    const worker = createSqsWorker({
      name: "t2",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 1,
      visibilityTimeoutSeconds: 1,
      handler: async (event) => {
        for (const r of event.Records) receives.set(r.body, (receives.get(r.body) ?? 0) + 1);
        return {
          batchItemFailures: event.Records.filter((r) => r.body === "bad").map((r) => ({
            itemIdentifier: r.messageId,
          })),
        };
      },
    });
    await worker.start();
    await until(() => (receives.get("bad") ?? 0) >= 3);
    await worker.stop();
    expect(receives.get("ok-1")).toBe(1);
    expect(receives.get("ok-2")).toBe(1);
  });

  it("fails the whole batch when the handler throws or reports an unknown itemIdentifier", async () => {
    for (const mode of ["throw", "malformed"] as const) {
      const queueUrl = await newQueue(1);
      await send(stack.sqs, queueUrl, ["a", "b"]);
      const receives = new Map<string, number>();
      const handler: SqsHandler = async (event) => {
        for (const r of event.Records) receives.set(r.body, (receives.get(r.body) ?? 0) + 1);
        if (mode === "throw") throw new Error("boom");
        return { batchItemFailures: [{ itemIdentifier: "not-a-message-of-this-batch" }] };
      };
      const worker = createSqsWorker({
        name: `t3-${mode}`,
        sqs: stack.sqs,
        queueUrl,
        waitTimeSeconds: 1,
        visibilityTimeoutSeconds: 1,
        handler,
      });
      await worker.start();
      await until(() => (receives.get("a") ?? 0) >= 2 && (receives.get("b") ?? 0) >= 2);
      await worker.stop();
      expect(worker.stats().succeeded).toBe(0);
    }
  });

  it("keeps a long batch invisible with heartbeats", async () => {
    const queueUrl = await newQueue(3);
    await send(stack.sqs, queueUrl, ["slow"]);
    let calls = 0;
    const running = gate();
    const worker = createSqsWorker({
      name: "t4",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 1,
      visibilityTimeoutSeconds: 3,
      handler: async () => {
        calls += 1;
        await running.wait;
      },
    });
    await worker.start();
    await until(() => calls === 1);
    // A competing consumer polls past the 3 s visibility timeout while the batch runs: without
    // heartbeats it would get the message (heartbeats every second leave 2 s of slack).
    const competitor = await stack.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 4, MaxNumberOfMessages: 1 }),
    );
    expect(competitor.Messages ?? []).toHaveLength(0);
    running.open();
    await until(() => worker.stats().succeeded === 1);
    await worker.stop();
    expect(calls).toBe(1);
  });

  it("does not heartbeat a message the handler scheduled for a retry", async () => {
    const queueUrl = await newQueue(3);
    await send(stack.sqs, queueUrl, ["retry-me", "keep-me"]);
    let calls = 0;
    const running = gate();
    const worker = createSqsWorker({
      name: "t4b",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 1,
      visibilityTimeoutSeconds: 3,
      maxBatchingWindowMs: 300,
      handler: async (event) => {
        calls += 1;
        const retry = event.Records.find((r) => r.body === "retry-me");
        if (retry) await retryLater({ sqs: stack.sqs, queueUrl }, retry, 1);
        await running.wait;
        return { batchItemFailures: retry ? [{ itemIdentifier: retry.messageId }] : [] };
      },
    });
    await worker.start();
    await until(() => calls === 1);
    // While the batch still runs (heartbeats every second), the retried message is back after ~1 s
    // and the other one stays hidden, past its 3 s visibility timeout.
    const got: string[] = [];
    const since = Date.now();
    await until(async () => {
      const out = await stack.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          WaitTimeSeconds: 1,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 30,
        }),
      );
      got.push(...(out.Messages ?? []).map((m) => m.Body!));
      return got.includes("retry-me") && Date.now() - since > 4000;
    });
    expect(got).toEqual(["retry-me"]);
    running.open();
    await until(() => worker.stats().batches >= 1 && worker.stats().inFlight === 0);
    await worker.stop();
  });

  it("stop() lets an in-flight batch finish within the grace period", async () => {
    const queueUrl = await newQueue(30);
    await send(stack.sqs, queueUrl, ["finishing"]);
    let started = false;
    let finished = false;
    const worker = createSqsWorker({
      name: "t5a",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 1,
      drainGraceMs: 10_000,
      handler: async () => {
        started = true;
        await new Promise((r) => setTimeout(r, 500));
        finished = true;
      },
    });
    await worker.start();
    await until(() => started);
    await worker.stop();
    expect(finished).toBe(true);
    expect(worker.stats()).toMatchObject({ succeeded: 1, released: 0 });
    expect(await depth(queueUrl)).toEqual({ visible: 0, hidden: 0 });
  });

  it("stop() lets long polls end and releases what they received, so no message is left hidden", async () => {
    const queueUrl = await newQueue(30);
    const worker = createSqsWorker({
      name: "t5b",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 2,
      concurrency: 3,
      handler: async () => undefined,
    });
    await worker.start();
    await new Promise((r) => setTimeout(r, 200));
    const stopped = worker.stop();
    // Arrives while the loops sit in their last long poll.
    await send(stack.sqs, queueUrl, ["late arrival"]);
    await stopped;
    const { hidden, visible } = await depth(queueUrl);
    expect(hidden).toBe(0);
    expect(visible + worker.stats().succeeded).toBe(1);
  });

  it("stop() releases in-flight messages when the grace period ends", async () => {
    const queueUrl = await newQueue(30);
    await send(stack.sqs, queueUrl, ["stuck-1", "stuck-2"]);
    let started = false;
    const worker = createSqsWorker({
      name: "t5",
      sqs: stack.sqs,
      queueUrl,
      waitTimeSeconds: 1,
      drainGraceMs: 200,
      handler: async () => {
        started = true;
        await new Promise((r) => setTimeout(r, 60_000).unref());
      },
    });
    await worker.start();
    await until(() => started);
    await worker.stop();
    expect(worker.stats().released).toBe(2);
    // Released = visible again at once, not after the 30 s visibility timeout.
    const again = await stack.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 2, MaxNumberOfMessages: 10 }),
    );
    expect((again.Messages ?? []).map((m) => m.Body).sort()).toEqual(["stuck-1", "stuck-2"]);
  });

  it("backs off on connection errors, reports unhealthy, and recovers", async () => {
    const queueUrl = await newQueue(30);
    let failing = true;
    let attempts = 0;
    // An SDK stand-in only for the error path: receives fail like a refused connection.
    const flaky = {
      send: (command: unknown, options?: unknown) => {
        if (command instanceof ReceiveMessageCommand) {
          attempts += 1;
          if (failing) {
            return Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
          }
        }
        return (stack.sqs.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, options);
      },
    } as unknown as SQSClient;
    const seen: string[] = [];
    const worker = createSqsWorker({
      name: "t6",
      sqs: flaky,
      queueUrl,
      waitTimeSeconds: 1,
      backoffInitialMs: 200,
      handler: async (event) => {
        for (const r of event.Records) seen.push(r.body);
      },
    });
    const started = Date.now();
    await worker.start();
    await until(() => attempts >= 3);
    expect(worker.healthy()).toBe(false);
    // Doubling from 200 ms (each delay at least half its ceiling): 100 + 200 ms at least before the third attempt, not a busy loop.
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    failing = false;
    await send(stack.sqs, queueUrl, ["after"]);
    await until(() => seen.includes("after"));
    expect(worker.healthy()).toBe(true);
    await worker.stop();
  });

  it("serves /healthz and /metrics", async () => {
    let ok = true;
    const endpoints = await serveWorkerEndpoints({ port: 0, host: "127.0.0.1", health: async () => ok });
    try {
      expect((await fetch(`${endpoints.url}/healthz`)).status).toBe(200);
      ok = false;
      expect((await fetch(`${endpoints.url}/healthz`)).status).toBe(503);
      const metrics = await (await fetch(`${endpoints.url}/metrics`)).text();
      expect(metrics).toContain("deepqueue_worker_messages_total");
    } finally {
      await endpoints.close();
    }
  });
});

describe("sqs worker with priority lanes", () => {
  /** A worker on two lanes, interactive first, with 1 s polls. */
  const laneWorker = (
    name: string,
    lanes: [string, string],
    handler: SqsHandler,
    extra: { concurrency?: number; batchSize?: number } = {},
  ) =>
    createSqsWorker({
      name,
      sqs: stack.sqs,
      queues: lanes.map((url) => ({ url })),
      waitTimeSeconds: 1,
      concurrency: extra.concurrency ?? 2,
      batchSize: extra.batchSize,
      handler,
    });

  it("takes every message of the first queue before any of the second, each with its own eventSourceARN", async () => {
    const interactive = await newQueue();
    const batch = await newQueue();
    await send(
      stack.sqs,
      batch,
      Array.from({ length: 30 }, (_, i) => `b${i}`),
    );
    await send(
      stack.sqs,
      interactive,
      Array.from({ length: 30 }, (_, i) => `i${i}`),
    );
    const order: string[] = [];
    const arns = new Map<string, string>();
    const worker = laneWorker("lanes-1", [interactive, batch], async (event) => {
      for (const r of event.Records) {
        order.push(r.body);
        arns.set(r.body[0]!, r.eventSourceARN);
      }
      await new Promise((r) => setTimeout(r, 50));
    });
    await worker.start();
    await until(() => order.length >= 60);
    await worker.stop();
    const lastInteractive = Math.max(...order.flatMap((b, i) => (b.startsWith("i") ? [i] : [])));
    const firstBatch = order.findIndex((b) => b.startsWith("b"));
    expect(lastInteractive).toBe(29);
    expect(firstBatch).toBe(30);
    expect(arns.get("i")).toMatch(new RegExp(`:${nameOf(interactive)}$`));
    expect(arns.get("b")).toMatch(new RegExp(`:${nameOf(batch)}$`));
    expect(await depth(interactive)).toEqual({ visible: 0, hidden: 0 });
    expect(await depth(batch)).toEqual({ visible: 0, hidden: 0 });
  });

  it("keeps a slot for the first queue: batch lines hold at most concurrency - 1, and an interactive message does not wait for them", async () => {
    const interactive = await newQueue();
    const batch = await newQueue();
    await send(
      stack.sqs,
      batch,
      Array.from({ length: 16 }, (_, i) => `b${i}`),
    );
    let running = 0;
    let maxRunning = 0;
    let batchDone = 0;
    let interactiveStartedAfter: number | undefined;
    const worker = laneWorker(
      "lanes-2",
      [interactive, batch],
      async (event) => {
        const body = event.Records[0]!.body;
        if (body === "interactive") {
          interactiveStartedAfter = batchDone;
          return;
        }
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 300));
        running -= 1;
        batchDone += 1;
      },
      { batchSize: 1, concurrency: 3 },
    );
    await worker.start();
    await until(() => batchDone >= 2);
    await send(stack.sqs, interactive, ["interactive"]);
    await until(() => batchDone >= 16);
    await worker.stop();
    expect(maxRunning).toBe(2);
    // Served while batch lines were still waiting (eight rounds of two), not after them.
    expect(interactiveStartedAfter).toBeLessThan(12);
  });

  it("deletes, extends and dead-letters a batch-lane message on its own queue", async () => {
    const interactive = await newQueue(30);
    const batchDlq = await newQueue(30);
    const dlqArn = (
      await stack.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: batchDlq, AttributeNames: ["QueueArn"] }),
      )
    ).Attributes!.QueueArn!;
    const batch = await newQueue(2, {
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 2 }),
    });
    await send(stack.sqs, batch, ["slow", "ok", "bad"]);
    const receives = new Map<string, number>();
    const worker = laneWorker("lanes-3", [interactive, batch], async (event) => {
      for (const r of event.Records) receives.set(r.body, (receives.get(r.body) ?? 0) + 1);
      // Past the 2 s visibility timeout: only heartbeats on the batch queue keep it hidden.
      if (event.Records.some((r) => r.body === "slow")) await new Promise((r) => setTimeout(r, 3500));
      return {
        batchItemFailures: event.Records.filter((r) => r.body === "bad").map((r) => ({
          itemIdentifier: r.messageId,
        })),
      };
    });
    await worker.start();
    await until(async () => (await depth(batchDlq)).visible === 1, 20_000);
    await until(async () => {
      const left = await depth(batch);
      return left.visible + left.hidden === 0;
    });
    await worker.stop();
    expect(receives.get("slow")).toBe(1);
    expect(receives.get("ok")).toBe(1);
    expect(receives.get("bad")).toBe(2);
    const dead = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: batchDlq, WaitTimeSeconds: 1 }));
    expect(dead.Messages?.[0]?.Body).toBe("bad");
    expect(await depth(interactive)).toEqual({ visible: 0, hidden: 0 });
  });

  it("refuses lanes without a slot for the lower queues, naming the options", () => {
    expect(() =>
      createSqsWorker({
        name: "lanes-4",
        sqs: stack.sqs,
        queues: [{ url: "http://q/a" }, { url: "http://q/b" }],
        concurrency: 1,
        handler: async () => undefined,
      }),
    ).toThrow(/concurrency \(1\) must exceed topLaneReservedSlots \(1\)/);
  });
});
