import type { SQSRecord } from "aws-lambda";
import { describe, expect, it } from "vitest";
import type { InferenceRequest } from "../../events/index.ts";
import { ModelRateLimitedError, ModelUnavailableError } from "../shared/inference-errors.ts";
import { createLogger } from "../shared/logger.ts";
import type { CachedAnswer } from "../shared/stores/cache.ts";
import type { DegradationSettings, Tenant } from "../shared/stores/tenants.ts";
import { DegradationLadder, RetrySchedule } from "./degradation.ts";
import { planRuns } from "./grouping.ts";
import type { Answer } from "./item.ts";

const silent = createLogger({ level: "silent" });

function request(id: string, fields: Partial<InferenceRequest> = {}): InferenceRequest {
  return {
    id,
    tenant: "acme",
    model: "deepseek-chat",
    max_tokens: 32,
    temperature: 0.7,
    cache: true,
    prompt_tokens: 3,
    created_at: new Date().toISOString(),
    deadline_at: new Date(Date.now() + 60_000).toISOString(),
    ...fields,
  } as InferenceRequest;
}

function item(id: string, fields: Partial<InferenceRequest> = {}, receives = 1) {
  const record = {
    messageId: id,
    attributes: { ApproximateReceiveCount: String(receives) },
  } as unknown as SQSRecord;
  return { record, request: request(id, fields) };
}

describe("planRuns (grouping into micro-batches)", () => {
  it("puts compatible plain prompts in arrays of at most batchSize, each chat and each stream alone", () => {
    const prompts = Array.from({ length: 12 }, (_, i) => item(`p${i}`, { prompt: `prompt ${i}` }));
    const colder = item("cold", { prompt: "x", temperature: 0 });
    const otherModel = item("small", { prompt: "x", model: "deepseek-chat-small" });
    const chats = [item("c1", { messages: [{ role: "user", content: "hi" }] }), item("c2", { messages: [] })];
    const withContext = item("ctx", { prompt: "x", context: [{ role: "user", content: "x" }] });
    const streamed = item("s1", { prompt: "x", reply: { queue_url: "q", stream: true } });
    const runs = planRuns([...prompts, colder, otherModel, ...chats, withContext, streamed], 5);
    const shape = runs.map((r) => `${r.kind}:${r.items.map((i) => i.request.id).join(",")}`).sort();
    expect(shape).toEqual(
      [
        "prompts:p0,p1,p2,p3,p4",
        "prompts:p5,p6,p7,p8,p9",
        "prompts:p10,p11",
        "prompts:cold",
        "prompts:small",
        "chat:c1",
        "chat:c2",
        "chat:ctx",
        "stream:s1",
      ].sort(),
    );
  });

  it("streams only a first attempt, and never a request that asked for no stream", () => {
    const runs = planRuns(
      [
        item("again", { prompt: "x", reply: { queue_url: "q", stream: true } }, 2),
        item("whole", { prompt: "y", reply: { queue_url: "q", stream: false } }),
      ],
      10,
    );
    expect(runs).toHaveLength(1);
    expect(runs[0]!.kind).toBe("prompts");
    expect(runs[0]!.items.map((i) => i.request.id)).toEqual(["again", "whole"]);
  });
});

describe("DegradationLadder (cache → fallback model → static → failed)", () => {
  const lastAnswer: CachedAnswer = {
    text: "the last answer",
    finish_reason: "stop",
    usage: { prompt_tokens: 3, completion_tokens: 3 },
    request_id: "old",
    created_at: new Date().toISOString(),
  };
  const fallbackAnswer: Answer = {
    text: "from the small model",
    finish_reason: "stop",
    usage: { prompt_tokens: 3, completion_tokens: 4 },
  };

  function ladder(options: { last?: CachedAnswer; fallbackFails?: boolean; fallbackModel?: string } = {}) {
    const calls: string[] = [];
    const built = new DegradationLadder({
      cache: {
        getLast: async (key) => {
          calls.push(`getLast:${key.length > 0}`);
          return options.last;
        },
      },
      models: {
        fallback: async (_item, model) => {
          calls.push(`fallback:${model}`);
          if (options.fallbackFails) throw new ModelUnavailableError("the small one is down too");
          return fallbackAnswer;
        },
      },
      fallbackModel: "fallbackModel" in options ? options.fallbackModel : "deepseek-chat-small",
      staticReply: "static",
      logger: silent,
    });
    return { ladder: built, calls };
  }

  const tenant = (degradation: Partial<DegradationSettings>) =>
    ({ degradation: { cache: true, fallback: true, static: true, ...degradation } }) as Tenant;
  const subject = (t?: Tenant) => ({ request: request("r", { prompt: "p" }), tenant: t });

  it("answers from the last cached answer first, without calling the fallback", async () => {
    const { ladder: l, calls } = ladder({ last: lastAnswer });
    const outcome = await l.answer(subject(), "unavailable");
    expect(outcome).toEqual({
      source: "cache",
      answer: { text: "the last answer", finish_reason: "stop", usage: lastAnswer.usage },
    });
    expect(calls).toEqual(["getLast:true"]);
  });

  it("goes to the fallback model when there is no last answer or the tenant turned the cache level off", async () => {
    expect(await ladder().ladder.answer(subject(), "unavailable")).toEqual({
      source: "fallback",
      answer: fallbackAnswer,
    });
    const { ladder: l, calls } = ladder({ last: lastAnswer });
    expect(await l.answer(subject(tenant({ cache: false })), "unavailable")).toMatchObject({
      source: "fallback",
    });
    expect(calls).toEqual(["fallback:deepseek-chat-small"]);
  });

  it("gives the static reply when the fallback fails, is off, or is the request's own model", async () => {
    const staticReply = {
      source: "static",
      answer: { text: "static", finish_reason: "stop", usage: { prompt_tokens: 0, completion_tokens: 0 } },
    };
    expect(await ladder({ fallbackFails: true }).ladder.answer(subject(), "unavailable")).toEqual(
      staticReply,
    );
    expect(await ladder().ladder.answer(subject(tenant({ fallback: false })), "unavailable")).toEqual(
      staticReply,
    );
    const same = ladder({ fallbackModel: "deepseek-chat" });
    expect(await same.ladder.answer(subject(), "unavailable")).toEqual(staticReply);
    expect(same.calls).not.toContain("fallback:deepseek-chat");
    expect(await ladder({ fallbackModel: undefined }).ladder.answer(subject(), "unavailable")).toEqual(
      staticReply,
    );
  });

  it("fails with a fixed message when every level is off: deadline_exceeded past the deadline, else model_unavailable", async () => {
    const none = tenant({ cache: false, fallback: false, static: false });
    const cause = new ModelUnavailableError("cannot reach http://10.0.3.4:8000");
    expect(await ladder().ladder.answer(subject(none), "unavailable", cause)).toEqual({
      error: { code: "model_unavailable", message: "the model server is unavailable" },
    });
    expect(await ladder().ladder.answer(subject(none), "deadline")).toEqual({
      error: { code: "deadline_exceeded", message: "no answer before the deadline" },
    });
  });
});

describe("RetrySchedule (retries through the queue)", () => {
  const schedule = new RetrySchedule({ retryBaseSeconds: 2, retryMaxSeconds: 60, degradeMarginSeconds: 10 });

  it("doubles from the base per attempt, capped at the max", () => {
    const error = new ModelUnavailableError("503");
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => schedule.delaySeconds(n, error))).toEqual([
      2, 4, 8, 16, 32, 60, 60,
    ]);
  });

  it("waits at least the server's Retry-After", () => {
    expect(schedule.delaySeconds(1, new ModelRateLimitedError("429", { retryAfterMs: 7_500 }))).toBe(8);
    expect(schedule.delaySeconds(4, new ModelRateLimitedError("429", { retryAfterMs: 1_000 }))).toBe(16);
  });

  it("says when a retry would land within the degrade margin of the deadline", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    const deadline = "2026-01-01T00:01:00Z";
    expect(schedule.tooLate(deadline, 49, now)).toBe(false);
    expect(schedule.tooLate(deadline, 50, now)).toBe(true);
  });
});
