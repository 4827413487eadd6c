import { type AcceptedRequest, buildEvent, type ErrorDetail, EVENT_TYPES } from "../../events/index.ts";
import { newEventId } from "../shared/ids.ts";
import type { Logger } from "../shared/logger.ts";
import type { BatchSender } from "../shared/sqs-records.ts";
import type { RequestStore } from "../shared/stores/requests.ts";
import type { TenantStore } from "../shared/stores/tenants.ts";
import type { UsageStore } from "../shared/stores/usage.ts";
import { type BatchLines, lineRequestId, type PreparedLine } from "./lines.ts";
import type { StoredBatch } from "./store.ts";

export interface LineDispatcherDeps {
  lines: BatchLines;
  requests: Pick<RequestStore, "createMany" | "fail">;
  usage: Pick<UsageStore, "reserveMany">;
  tenants: Pick<TenantStore, "get">;
  /** Sends to `<prefix>-inference-batch`, the batch lane. */
  lane: BatchSender;
  defaultModel: string;
  logger: Logger;
}

/** What sending one chunk did. */
export interface ChunkSent {
  lines: number;
  /** Lines failed without a model call (past the context window, over the tenant's quota). */
  prefailed: number;
}

/**
 * Sends one chunk of a batch's prepared lines to the batch lane, as ingest would send requests:
 * each line counts against the tenant's daily quotas, gets a request record (id derived from the
 * batch and the line) and an `inference.requested` message with `lane: "batch"` and its `batch`.
 * A line the model cannot serve, or one over the quota, is a failed record at once (the error
 * file shows it); the rest of the batch goes on.
 *
 * Sending a chunk again (the worker died before the cursor moved) finds the records it made:
 * their quota is not counted again, and a line still queued is sent again (a duplicate message
 * is harmless: a request's terminal write is conditional).
 */
export class LineDispatcher {
  constructor(private readonly deps: LineDispatcherDeps) {}

  async send(batch: StoredBatch, chunk: number): Promise<ChunkSent> {
    const lines = await this.deps.lines.readChunk(batch.id, chunk);
    const ids = lines.map((l) => lineRequestId(batch.id, l.line));
    const existing = await this.deps.lines.records(ids);
    const fresh = lines.filter((l) => !existing.has(lineRequestId(batch.id, l.line)));
    const rejects = await this.#admit(batch, fresh);
    const accepted = fresh.map((l) => this.#request(batch, l));
    const created = await this.deps.requests.createMany(accepted.map((request) => ({ request })));
    const failedWrite = created.find((c): c is Error => c instanceof Error);
    if (failedWrite) throw failedWrite;
    for (const [n, reason] of rejects) await this.deps.requests.fail(accepted[n]!.id, reason);
    const again = lines
      .filter((l) => existing.get(lineRequestId(batch.id, l.line))?.status === "queued")
      .map((l) => this.#request(batch, l));
    const toSend = [...accepted.filter((_, n) => !rejects.has(n)), ...again];
    await Promise.all(
      toSend.map((request) =>
        this.deps.lane.send(
          buildEvent({
            id: newEventId(),
            type: EVENT_TYPES.inferenceRequested,
            subject: request.id,
            data: request,
            time: request.created_at,
          }),
          { tenant: request.tenant },
        ),
      ),
    );
    return { lines: lines.length, prefailed: rejects.size };
  }

  /** Counts the fresh lines against the tenant's quotas; the lines refused (by index) and why. */
  async #admit(batch: StoredBatch, fresh: PreparedLine[]): Promise<Map<number, ErrorDetail>> {
    const rejects = new Map<number, ErrorDetail>();
    fresh.forEach((l, n) => {
      if (l.reject) rejects.set(n, l.reject);
    });
    const servable = fresh.map((l, n) => ({ l, n })).filter(({ n }) => !rejects.has(n));
    if (servable.length === 0) return rejects;
    const tenant = await this.deps.tenants.get(batch.tenant);
    const limits = {
      daily_requests: tenant?.daily_requests ?? null,
      daily_tokens: tenant?.daily_tokens ?? null,
    };
    const outcomes = await this.deps.usage.reserveMany(
      batch.tenant,
      servable.map(({ l }) => l.prompt_tokens + l.max_tokens),
      limits,
    );
    outcomes.forEach((outcome, i) => {
      if (outcome.admitted) return;
      rejects.set(servable[i]!.n, {
        code: "quota_exceeded",
        message: `the tenant's daily ${outcome.kind} quota is spent; it resets at 00:00 UTC`,
      });
    });
    return rejects;
  }

  #request(batch: StoredBatch, line: PreparedLine): AcceptedRequest {
    const now = new Date().toISOString();
    return {
      id: lineRequestId(batch.id, line.line),
      tenant: batch.tenant,
      model: line.model ?? this.deps.defaultModel,
      ...(line.prompt !== undefined ? { prompt: line.prompt } : {}),
      ...(line.messages ? { messages: line.messages } : {}),
      max_tokens: line.max_tokens,
      temperature: line.temperature,
      // Batch lines are independent requests: no response cache, no conversation.
      cache: false,
      prompt_tokens: line.prompt_tokens,
      created_at: now,
      // The batch's window is each line's deadline: past it the batch expires anyway.
      deadline_at: new Date((batch.expires_at ?? 0) * 1000).toISOString(),
      lane: "batch",
      batch: { id: batch.id, custom_id: line.custom_id, line: line.line },
    };
  }
}
