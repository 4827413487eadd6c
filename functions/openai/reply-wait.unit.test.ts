import { describe, expect, it } from "vitest";
import type { RequestRecord } from "../../events/index.ts";
import { ReplyRouter } from "./reply-router.ts";
import { ReplyWait } from "./reply-wait.ts";

const record: RequestRecord = {
  id: "req_1",
  status: "completed",
  model: "m",
  created_at: "2026-11-28T09:00:00.000Z",
};
const soon = () => Date.now() + 1000;

describe("ReplyRouter and ReplyWait", () => {
  it("puts deltas back in seq order, drops repeats, and ends with done", async () => {
    const router = new ReplyRouter();
    const wait = new ReplyWait(router, "req_1");
    for (const seq of [1, 0, 0, 2, 1])
      router.dispatch({ type: "delta", request_id: "req_1", seq, text: `t${seq}` });
    router.dispatch({ type: "done", request_id: "req_1", record });
    const seen = [];
    for (let e = await wait.next(soon()); e.type !== "timeout"; e = await wait.next(Date.now() + 20)) {
      seen.push(e.type === "delta" ? e.text : e.type);
      if (e.type === "done") break;
    }
    expect(seen).toEqual(["t0", "t1", "t2", "done"]);
  });

  it("keeps replies that come before their caller subscribes (a cache hit beating the 202)", async () => {
    const router = new ReplyRouter();
    expect(router.dispatch({ type: "done", request_id: "req_1", record })).toBe(false);
    const wait = new ReplyWait(router, "req_1");
    expect(await wait.next(soon())).toEqual({ type: "done", record, claimChecked: false });
  });

  it("ends a wait with timeout at its deadline or when aborted, and stops listening on close", async () => {
    const router = new ReplyRouter();
    const wait = new ReplyWait(router, "req_1");
    expect(await wait.next(Date.now() + 30)).toEqual({ type: "timeout" });
    const abort = new AbortController();
    const pending = wait.next(soon(), abort.signal);
    abort.abort();
    expect(await pending).toEqual({ type: "timeout" });
    expect(router.waiting).toBe(1);
    wait.close();
    expect(router.waiting).toBe(0);
    // The caller has gone: nobody takes it.
    expect(router.dispatch({ type: "done", request_id: "req_1", record })).toBe(false);
  });

  it("wakes a waiting caller as soon as its reply comes", async () => {
    const router = new ReplyRouter();
    const wait = new ReplyWait(router, "req_1");
    const next = wait.next(Date.now() + 5000);
    setTimeout(() => router.dispatch({ type: "delta", request_id: "req_1", seq: 0, text: "x" }), 10);
    expect(await next).toEqual({ type: "delta", text: "x" });
  });
});
