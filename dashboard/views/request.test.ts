import { describe, expect, it } from "vitest";
import type { StoredRequest } from "../../functions/shared/stores/requests.ts";
import { detailPanel, timeline } from "./request.ts";

const base: StoredRequest = {
  id: "req_1",
  status: "completed",
  model: "deepseek-chat",
  tenant: "acme",
  created_at: "2026-11-28T06:00:00.000Z",
  processing_at: "2026-11-28T06:00:00.020Z",
  completed_at: "2026-11-28T06:00:01.500Z",
  updated_at: "2026-11-28T06:00:09.000Z",
  deadline_at: 0,
  expires_at: 0,
  result: {
    text: "<b>hi</b>",
    finish_reason: "stop",
    usage: { prompt_tokens: 3, completion_tokens: 5 },
    source: "model",
  },
  request: {
    id: "req_1",
    tenant: "acme",
    model: "deepseek-chat",
    prompt: "hello",
    max_tokens: 16,
    temperature: 0,
    cache: true,
    prompt_tokens: 3,
    created_at: "2026-11-28T06:00:00.000Z",
    deadline_at: "2026-11-28T06:15:00.000Z",
    callback_url: "https://hooks.example/in?token=s3cr3t",
  },
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  delivery: { status: "delivered", attempts: 2, last_attempt_at: "2026-11-28T06:00:08.000Z" },
  callback_attempts: [
    { at: "2026-11-28T06:00:02.000Z", outcome: "retry", status: 503, error: "HTTP 503" },
    { at: "2026-11-28T06:00:08.000Z", outcome: "delivered", status: 200 },
  ],
};

describe("a request's timeline", () => {
  it("lists the stages the record keeps, with each callback attempt's HTTP status", () => {
    expect(timeline(base).map((s) => [s.label, s.state])).toEqual([
      ["accepted", "done"],
      ["picked up by the cache worker", "done"],
      ["answered by the model", "done"],
      ["result event sent for delivery", "done"],
      ["callback attempt 1: HTTP 503", "failed"],
      ["callback attempt 2: HTTP 200", "done"],
      ["callback delivered", "done"],
    ]);
  });

  it("shows a queued request as waiting and a failed one with its error", () => {
    const {
      processing_at: _p,
      completed_at: _c,
      result: _r,
      delivery: _d,
      callback_attempts: _a,
      ...rest
    } = base;
    expect(timeline({ ...rest, status: "queued" }).map((s) => s.label)).toEqual([
      "accepted",
      "waiting in the requests queue",
    ]);
    const failed = timeline({
      ...rest,
      status: "failed",
      completed_at: base.completed_at!,
      error: { code: "deadline_exceeded", message: "too late" },
    });
    expect(failed.find((s) => s.state === "failed")).toMatchObject({ detail: "deadline_exceeded: too late" });
  });

  it("renders escaped text, the trace id, and no credential from the callback URL", () => {
    const page = String(detailPanel(base, base.id, [], Date.parse("2026-11-28T06:01:00Z")));
    expect(page).toContain("&lt;b&gt;hi&lt;/b&gt;");
    expect(page).not.toContain("<b>hi</b>");
    expect(page).toContain("0af7651916cd43dd8448eb211c80319c");
    expect(page).not.toContain("s3cr3t");
    expect(page).toContain("+1.5 s");
  });
});
