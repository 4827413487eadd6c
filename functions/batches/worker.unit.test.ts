import { describe, expect, it } from "vitest";
import type { BatchStatus } from "../../events/index.ts";
import type { FileStore, StoredFile } from "../files/store.ts";
import { createLogger } from "../shared/logger.ts";
import type { LineDispatcher } from "./dispatch.ts";
import type { BatchFinalizer } from "./finalize.ts";
import type { BatchLines, PreparedLine } from "./lines.ts";
import type { BatchChanges, BatchStore, StoredBatch } from "./store.ts";
import { BatchWorker } from "./worker.ts";

/** An in-memory BatchStore with the DynamoDB adapter's conditions. */
class MemoryBatches implements BatchStore {
  readonly items = new Map<string, StoredBatch>();
  async create(batch: StoredBatch) {
    this.items.set(batch.id, { ...batch });
  }
  async get(tenant: string, id: string) {
    const b = this.items.get(id);
    return b?.tenant === tenant ? { ...b } : undefined;
  }
  async load(id: string) {
    const b = this.items.get(id);
    return b ? { ...b } : undefined;
  }
  async list() {
    return { data: [...this.items.values()], has_more: false };
  }
  async transition(id: string, from: readonly BatchStatus[], to: BatchStatus, changes: BatchChanges = {}) {
    const b = this.items.get(id);
    if (!b || !from.includes(b.status)) return undefined;
    Object.assign(b, changes, { status: to });
    return { ...b };
  }
  async count(id: string, completed: number, failed: number) {
    const b = this.items.get(id);
    if (!b || !["in_progress", "cancelling"].includes(b.status)) return undefined;
    b.completed += completed;
    b.failed += failed;
    return { ...b };
  }
  async advance(id: string, cursor: number, lines: number, prefailed: number) {
    const b = this.items.get(id)!;
    if (b.cursor !== cursor) return false;
    Object.assign(b, { cursor: cursor + 1, dispatched: b.dispatched + lines, failed: b.failed + prefailed });
    return true;
  }
  async recount(id: string, completed: number, failed: number) {
    Object.assign(this.items.get(id)!, { completed, failed });
  }
}

const line = (n: number, content = "hi", max_tokens = 16) =>
  JSON.stringify({
    custom_id: `c${n}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { messages: [{ role: "user", content }], max_tokens },
  });

function setup(text: string, options: { window?: number; now?: () => number } = {}) {
  const batches = new MemoryBatches();
  const file = { id: "file-1", tenant: "acme", purpose: "batch" } as StoredFile;
  const files = {
    get: async (tenant: string, id: string) => (tenant === "acme" && id === "file-1" ? file : undefined),
    content: async () => Buffer.from(text),
  } as unknown as FileStore;
  const chunks: PreparedLine[][] = [];
  const lines = {
    writeChunks: async (_id: string, c: PreparedLine[][]) => void chunks.push(...c),
  } as unknown as BatchLines;
  const sent: number[] = [];
  const dispatcher = {
    send: async (_b: StoredBatch, n: number) => {
      sent.push(n);
      return { lines: chunks[n]!.length, prefailed: chunks[n]!.filter((l) => l.reject).length };
    },
  } as unknown as LineDispatcher;
  const ended: string[] = [];
  const finalizer = {
    complete: async (b: StoredBatch) => {
      ended.push("completed");
      return batches.transition(b.id, ["in_progress"], "completed");
    },
    stop: async (b: StoredBatch, how: "expired" | "cancelled") => {
      ended.push(how);
      return batches.transition(b.id, [b.status], how);
    },
    fail: async (b: StoredBatch, errors: unknown[]) => {
      ended.push(`failed:${errors.length}`);
      return batches.transition(b.id, ["validating"], "failed");
    },
    recount: async () => ({ completed: 0, failed: 0, running: 0, output: [], errors: [] }),
  } as unknown as BatchFinalizer;
  const worker = new BatchWorker({
    batches,
    files,
    lines,
    dispatcher,
    finalizer,
    countTokens: (l) => (l.messages?.[0]?.content.length ?? 0) + 5,
    maxModelLen: 100,
    logger: createLogger({ level: "silent" }),
    window: options.window ?? 4,
    chunkLines: 2,
    now: options.now ?? Date.now,
  });
  const batch: StoredBatch = {
    id: "batch_1",
    tenant: "acme",
    endpoint: "/v1/chat/completions",
    input_file_id: "file-1",
    completion_window: "24h",
    status: "validating",
    created_at: 0,
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    metadata: null,
    errors: null,
    output_file_id: null,
    error_file_id: null,
    in_progress_at: null,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    total: 0,
    completed: 0,
    failed: 0,
    chunks: 0,
    chunk_lines: 0,
    cursor: 0,
    dispatched: 0,
    updated_ms: Date.now(),
  };
  void batches.create(batch);
  const state = () => batches.items.get("batch_1")!;
  const finished = (n: number, status: "completed" | "failed" = "completed") =>
    Array.from({ length: n }, (_, i) => ({
      type: "line_finished" as const,
      batch_id: "batch_1",
      request_id: `r${i}`,
      line: i,
      status,
    }));
  return { worker, state, sent, ended, chunks, finished, batches };
}

const advance = { type: "advance" as const, batch_id: "batch_1" };

describe("BatchWorker status transitions", () => {
  it("validating → in_progress, then keeps at most a window of lines in the lane, topping it up", async () => {
    const t = setup(Array.from({ length: 9 }, (_, n) => line(n)).join("\n"));
    await t.worker.handle([advance]);
    expect(t.state()).toMatchObject({ status: "in_progress", total: 9, chunks: 5, chunk_lines: 2 });
    expect(t.state().in_progress_at).toEqual(expect.any(Number));
    expect(t.sent).toEqual([0, 1]); // 4 lines: the window
    await t.worker.handle(t.finished(1));
    expect(t.sent).toEqual([0, 1]); // 3 running: no room for a chunk of 2
    await t.worker.handle(t.finished(1));
    expect(t.sent).toEqual([0, 1, 2]);
    await t.worker.handle(t.finished(4));
    expect(t.sent).toEqual([0, 1, 2, 3, 4]);
    expect(t.ended).toEqual([]);
    await t.worker.handle(t.finished(2, "failed"));
    expect(t.ended).toEqual([]);
    await t.worker.handle(t.finished(1));
    expect(t.ended).toEqual(["completed"]);
  });

  it("fails a batch whose file is malformed, without sending anything", async () => {
    const t = setup(`${line(0)}\nnot json\n`);
    await t.worker.handle([advance]);
    expect(t.ended).toEqual(["failed:1"]);
    expect(t.state().status).toBe("failed");
    expect(t.sent).toEqual([]);
  });

  it("rejects a line past the context window at preparation; it counts as failed when sent", async () => {
    const t = setup([line(0), line(1, "x", 99)].join("\n"));
    await t.worker.handle([advance]);
    expect(t.chunks[0]![1]!.reject?.code).toBe("context_length_exceeded");
    expect(t.state()).toMatchObject({ dispatched: 2, failed: 1 });
    await t.worker.handle(t.finished(1));
    expect(t.ended).toEqual(["completed"]);
  });

  it("a cancelling batch ends cancelled once its running lines have ended, sending no more", async () => {
    const t = setup(Array.from({ length: 8 }, (_, n) => line(n)).join("\n"));
    await t.worker.handle([advance]);
    await t.batches.transition("batch_1", ["in_progress"], "cancelling");
    await t.worker.handle(t.finished(3));
    expect(t.ended).toEqual([]);
    await t.worker.handle(t.finished(1));
    expect(t.ended).toEqual(["cancelled"]);
    expect(t.sent).toEqual([0, 1]);
  });

  it("expires a batch past its window at the next step", async () => {
    let now = Date.now();
    const t = setup(Array.from({ length: 8 }, (_, n) => line(n)).join("\n"), { now: () => now });
    await t.worker.handle([advance]);
    now += 2 * 3600 * 1000;
    await t.worker.handle(t.finished(2));
    expect(t.ended).toEqual(["expired"]);
    expect(t.sent).toEqual([0, 1]);
  });
});
