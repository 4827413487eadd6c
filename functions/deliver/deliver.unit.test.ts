import type { SendMessageBatchCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { describe, expect, it } from "vitest";
import type { DeliveryState } from "../../events/index.ts";
import { createLogger } from "../shared/logger.ts";
import type { QueueUrls } from "../shared/queues.ts";
import { deliveryEvent } from "../shared/results.ts";
import type { RequestStore, StoredRequest } from "../shared/stores/requests.ts";
import type { Tenant } from "../shared/stores/tenants.ts";
import { ResultDeliverer } from "./deliver.ts";
import { DELIVERY_EXTENSIONS } from "./delivery-queue.ts";
import { deliverDepsFromEnv } from "./deps.ts";
import { type CallbackOutcome, parseRetryAfter, retryDelaySeconds } from "./webhook.ts";

const NOW = Date.parse("2026-11-28T12:00:00Z");

/** A completed request with a callback, as the delivery queue carries it. */
function message(extensions: Record<string, unknown> = {}): string {
  const stored = {
    id: "req_01",
    status: "completed",
    model: "deepseek-chat",
    tenant: "acme",
    created_at: new Date(NOW - 5000).toISOString(),
    updated_at: new Date(NOW - 1000).toISOString(),
    completed_at: new Date(NOW - 1000).toISOString(),
    deadline_at: NOW + 900_000,
    expires_at: 0,
    request: {
      id: "req_01",
      tenant: "acme",
      model: "deepseek-chat",
      prompt: "hi",
      max_tokens: 16,
      temperature: 0,
      cache: true,
      prompt_tokens: 1,
      created_at: new Date(NOW - 5000).toISOString(),
      deadline_at: new Date(NOW + 900_000).toISOString(),
      callback_url: "https://hooks.example.com/deepqueue",
    },
    result: {
      text: "hello",
      finish_reason: "stop",
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      source: "model",
    },
  } as StoredRequest;
  return JSON.stringify({ ...deliveryEvent(stored), ...extensions });
}

/** A deliverer on in-memory queues and stores whose callbacks answer `answers` in turn. */
function fakeDeliverer(answers: CallbackOutcome[], schedule: number[], random = () => 0.5) {
  const sent: Array<{ queue: string; body: Record<string, unknown>; delaySeconds?: number }> = [];
  const states: DeliveryState[] = [];
  const sqs = {
    send: async (command: SendMessageCommand | SendMessageBatchCommand) => {
      const input = command.input as SendMessageCommand["input"] & SendMessageBatchCommand["input"];
      for (const { MessageBody, DelaySeconds } of input.Entries ?? [input]) {
        sent.push({ queue: input.QueueUrl!, body: JSON.parse(MessageBody!), delaySeconds: DelaySeconds });
      }
      return { Successful: [], Failed: [] };
    },
  } as unknown as SQSClient;
  const requests = {
    get: async () => undefined,
    setDelivery: async (_id: string, state: DeliveryState) => void states.push(state),
  } as unknown as RequestStore;
  const tenant = { tenant: "acme", webhook_secrets: [{ secret: `whsec_${"A".repeat(32)}`, created_at: "" }] };
  const deliverer = new ResultDeliverer({
    sqs,
    requests,
    tenants: { get: async () => tenant as unknown as Tenant },
    logger: createLogger({ level: "silent" }),
    prefix: "t",
    queueUrls: { get: async (name: string) => name } as unknown as QueueUrls,
    schedule,
    lookup: async () => [{ address: "93.184.216.34", family: 4 }],
    post: async () => answers.shift() ?? { kind: "delivered", status: 200 },
    now: () => NOW,
    random,
  });
  return { deliverer, sent, states };
}

const failed: CallbackOutcome = { kind: "retry", status: 503, error: "receiver answered 503" };

describe("deliver's retry schedule (fake queues, stores and receiver)", () => {
  it("schedules the next attempt by the schedule, jittered, carrying the attempt count", async () => {
    // random 0 → the low end of ±20 %: 5 s → 4 s.
    const { deliverer, sent, states } = fakeDeliverer([failed], [5, 300], () => 0);
    const outcome = await deliverer.deliver(message());
    expect(outcome).toEqual({
      kind: "retry-scheduled",
      attempts: 1,
      delaySeconds: 4,
      error: "receiver answered 503",
    });
    expect(states).toEqual([expect.objectContaining({ status: "pending", attempts: 1 })]);
    const requeued = sent.find((m) => m.queue === "t-delivery")!;
    expect(requeued.delaySeconds).toBe(4);
    expect(requeued.body).toMatchObject({
      [DELIVERY_EXTENSIONS.attempt]: 1,
      [DELIVERY_EXTENSIONS.notBefore]: new Date(NOW + 4000).toISOString(),
      [DELIVERY_EXTENSIONS.published]: true,
    });
    // The result event went to the tenant's queue once, before the callback.
    expect(sent.filter((m) => m.queue === "t-results-acme")).toHaveLength(1);
  });

  it("takes the second step for the second retry, and a longer Retry-After over the schedule", async () => {
    const second = fakeDeliverer([failed], [5, 300]);
    const outcome = await second.deliverer.deliver(message({ [DELIVERY_EXTENSIONS.attempt]: 1 }));
    expect(outcome).toMatchObject({ kind: "retry-scheduled", attempts: 2, delaySeconds: 300 });
    // Chained: SQS delays at most 900 s, the message carries the rest in notBefore.
    const later = fakeDeliverer([{ ...failed, retryAfterSeconds: 3600 }], [5]);
    expect(await later.deliverer.deliver(message())).toMatchObject({ delaySeconds: 3600 });
    expect(later.sent.find((m) => m.queue === "t-delivery")?.delaySeconds).toBe(900);
  });

  it("dead-letters once the schedule is used up, without the attempt count (a redrive starts afresh)", async () => {
    const { deliverer, sent, states } = fakeDeliverer([failed], [5, 300]);
    const outcome = await deliverer.deliver(message({ [DELIVERY_EXTENSIONS.attempt]: 2 }));
    expect(outcome).toMatchObject({ kind: "failed", reason: "exhausted", attempts: 3 });
    const dead = sent.find((m) => m.queue === "t-delivery-dlq")!;
    expect(dead.body[DELIVERY_EXTENSIONS.failure]).toMatch(/^exhausted: 3 attempts failed/);
    expect(dead.body[DELIVERY_EXTENSIONS.attempt]).toBeUndefined();
    expect(states.at(-1)).toMatchObject({ status: "failed", attempts: 3 });
  });

  it("defers a message that arrives before its retry time instead of calling early", async () => {
    const { deliverer, sent } = fakeDeliverer([], [5]);
    const notBefore = new Date(NOW + 2 * 3600_000).toISOString();
    const outcome = await deliverer.deliver(
      message({ [DELIVERY_EXTENSIONS.attempt]: 1, [DELIVERY_EXTENSIONS.notBefore]: notBefore }),
    );
    expect(outcome).toEqual({ kind: "deferred", delaySeconds: 7200 });
    expect(sent).toEqual([expect.objectContaining({ queue: "t-delivery", delaySeconds: 900 })]);
  });

  it("stops at 410 Gone without dead-lettering", async () => {
    const { deliverer, sent } = fakeDeliverer([{ kind: "gone", status: 410 }], [5]);
    expect(await deliverer.deliver(message())).toMatchObject({ kind: "failed", reason: "gone", attempts: 1 });
    expect(sent.filter((m) => m.queue === "t-delivery-dlq")).toEqual([]);
  });
});

describe("retry timing", () => {
  it("follows the schedule with jitter and gives up after it", () => {
    const schedule = [5, 300, 1800];
    expect(retryDelaySeconds(1, schedule, { jitter: 0.2, random: () => 0.5 })).toBe(5);
    expect(retryDelaySeconds(2, schedule, { jitter: 0.2, random: () => 0 })).toBe(240);
    expect(retryDelaySeconds(2, schedule, { jitter: 0.2, random: () => 1 })).toBe(360);
    expect(retryDelaySeconds(4, schedule, { jitter: 0.2 })).toBeUndefined();
    expect(retryDelaySeconds(1, schedule, { jitter: 0, retryAfterSeconds: 60 })).toBe(60);
    expect(
      retryDelaySeconds(1, schedule, { jitter: 0, retryAfterSeconds: 1e9, maxRetryAfterSeconds: 36_000 }),
    ).toBe(36_000);
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("30", now)).toBe(30);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:02:00 GMT", now)).toBe(120);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe("the retry schedule in force", () => {
  it("is the documented one: over 24 hours, 8 attempts; seconds in dev mode; overridable", () => {
    const deployed = deliverDepsFromEnv({}).schedule;
    // Written out, not imported: a change to the constant must show up here.
    expect(deployed).toEqual([5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
    expect(deployed.reduce((a, b) => a + b, 0)).toBeGreaterThan(24 * 3600);
    const dev = deliverDepsFromEnv({ DEEPQUEUE_DEV_MODE: "true" }).schedule;
    expect(dev).toHaveLength(7);
    expect(dev.reduce((a, b) => a + b, 0)).toBeLessThan(180);
    expect(deliverDepsFromEnv({ DEEPQUEUE_DELIVERY_RETRY_SCHEDULE: "1,2,3" }).schedule).toEqual([1, 2, 3]);
  });
});
