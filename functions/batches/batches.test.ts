import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DeepqueueClient } from "../../client/client.ts";
import { type BatchEvent, type BatchOutputLine, batchOutputLineSchema } from "../../events/index.ts";
import { type BatchStack, startBatchStack } from "../../test/helpers/batch-api.ts";
import { runCli } from "../../test/helpers/cli.ts";
import { S3FileStore } from "../files/store.ts";
import { resultQueueName } from "../shared/names.ts";

const chatLine = (custom_id: string, content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "deepseek-chat", messages: [{ role: "user", content }], max_tokens: 16, ...extra },
  });

const upload = async (openai: OpenAI, lines: string[], name = "input.jsonl") =>
  openai.files.create({ file: await toFile(Buffer.from(`${lines.join("\n")}\n`), name), purpose: "batch" });

/** Polls the batch until `done` holds (the SDK's retrieve, as a producer would). */
async function waitFor(openai: OpenAI, id: string, done: (b: OpenAI.Batch) => boolean, timeoutMs = 30_000) {
  let batch = await openai.batches.retrieve(id);
  await expect
    .poll(
      async () => {
        batch = await openai.batches.retrieve(id);
        return done(batch);
      },
      { timeout: timeoutMs, interval: 100 },
    )
    .toBe(true);
  return batch;
}

const jsonl = async (openai: OpenAI, fileId: string) =>
  (await (await openai.files.content(fileId)).text())
    .trim()
    .split("\n")
    .map((l) => batchOutputLineSchema.parse(JSON.parse(l)));

/** The batch `usage` its output lines' response bodies add up to (their `usage`, summed). */
function summedUsage(lines: BatchOutputLine[]): OpenAI.Batches.BatchUsage {
  let input = 0;
  let output = 0;
  for (const line of lines) {
    const usage = (line.response?.body as { usage?: OpenAI.CompletionUsage } | undefined)?.usage;
    input += usage?.prompt_tokens ?? 0;
    output += usage?.completion_tokens ?? 0;
  }
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + output,
  };
}

describe("the Batch API with the official openai client, against the emulators and the simulator", () => {
  let stack: BatchStack;
  let openai: OpenAI;
  let other: OpenAI;

  beforeAll(async () => {
    stack = await startBatchStack({ env: { DEEPQUEUE_FILES_MAX_BYTES: "400000" } });
    openai = await stack.tenant("acme");
    other = await stack.tenant("globex");
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("uploads, reads, lists and deletes files; another tenant's file is 404", async () => {
    const lines = [chatLine("a", "hi")];
    const file = await upload(openai, lines, "one.jsonl");
    expect(file).toMatchObject({
      object: "file",
      purpose: "batch",
      filename: "one.jsonl",
      status: "processed",
    });
    expect(file.id).toMatch(/^file-/);
    expect(file.bytes).toBe(Buffer.byteLength(`${lines[0]}\n`));
    expect(await openai.files.retrieve(file.id)).toEqual(file);
    expect(await (await openai.files.content(file.id)).text()).toBe(`${lines[0]}\n`);
    const listed = await openai.files.list();
    expect(listed.data.map((f) => f.id)).toContain(file.id);

    await expect(other.files.retrieve(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(other.files.content(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(other.files.delete(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await other.files.list()).data).toEqual([]);

    expect(await openai.files.delete(file.id)).toEqual({ id: file.id, object: "file", deleted: true });
    await expect(openai.files.retrieve(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("refuses a file of another purpose and a body that is not multipart, in OpenAI's error shape", async () => {
    const error = await openai.files
      .create({ file: await toFile(Buffer.from("{}\n"), "x.jsonl"), purpose: "fine-tune" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("purpose");
    const raw = await fetch(`${stack.ingest.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${openai.apiKey}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: unknown }).error).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_request",
    });
  });

  it("takes files past the 256 KiB of POST /v1/requests, up to DEEPQUEUE_FILES_MAX_BYTES, refused past it while read", async () => {
    const line = chatLine("big", "x".repeat(1000));
    const lines = (n: number) => Array.from({ length: n }, (_, i) => line.replace('"big"', `"big-${i}"`));
    const large = await upload(openai, lines(300)); // ~330 KB
    expect(large.bytes).toBeGreaterThan(256 * 1024);
    const error = await upload(openai, lines(450)).catch((e: unknown) => e); // ~500 KB
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(413);
    const request = await fetch(`${stack.ingest.url}/v1/requests`, {
      method: "POST",
      headers: { authorization: `Bearer ${openai.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ prompt: "x".repeat(300 * 1024) }),
    });
    expect(request.status).toBe(413);
  });

  it("runs a batch end to end: files.create → batches.create → poll → files.content, custom_ids matched", async () => {
    const ids = Array.from({ length: 23 }, (_, n) => `line-${n}`);
    const input = await upload(
      openai,
      ids.map((id) => chatLine(id, `say ${id}`)),
    );
    const created = await openai.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "nightly" },
    });
    expect(created).toMatchObject({ object: "batch", status: "validating", metadata: { job: "nightly" } });
    expect(created).not.toHaveProperty("usage");
    const batch = await waitFor(openai, created.id, (b) => b.status === "completed");
    expect(batch.request_counts).toEqual({ total: 23, completed: 23, failed: 0 });
    expect(batch.model).toBe("deepseek-chat");
    for (const at of ["in_progress_at", "finalizing_at", "completed_at", "expires_at"] as const) {
      expect(batch[at], at).toEqual(expect.any(Number));
    }
    expect(batch.error_file_id).toBeNull();
    const out = await jsonl(openai, batch.output_file_id!);
    expect(out.map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    expect(batch.usage).toEqual(summedUsage(out));
    expect(batch.usage!.output_tokens).toBeGreaterThan(0);
    for (const line of out) {
      expect(line.error).toBeNull();
      expect(line.response?.status_code).toBe(200);
      const body = line.response!.body as OpenAI.ChatCompletion;
      expect(body.object).toBe("chat.completion");
      expect(body.choices[0]!.message.content).toEqual(expect.any(String));
      expect(body.id).toBe(line.response!.request_id);
    }
    const output = await openai.files.retrieve(batch.output_file_id!);
    expect(output.purpose).toBe("batch_output");
    expect(output.expires_at).toBe(output.created_at + 30 * 24 * 3600);

    // The tenant's result queue gets the batch's event (and no event per line).
    const events = await drainEvents(stack, "acme");
    const ended = events.find((e) => e.type === "deepqueue.batch.completed" && e.data.id === batch.id);
    expect(ended?.data.usage).toEqual(batch.usage);
    expect(events.some((e) => (e.type as string).startsWith("deepqueue.request."))).toBe(false);
    await expect(other.batches.retrieve(batch.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("fails a malformed file in validation with OpenAI's errors list and line numbers", async () => {
    const input = await upload(openai, [
      chatLine("ok", "fine"),
      "{not json",
      JSON.stringify({ custom_id: "u", method: "POST", url: "/v1/completions", body: { prompt: "x" } }),
      chatLine("ok", "duplicate id"),
    ]);
    const created = await openai.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const batch = await waitFor(openai, created.id, (b) => b.status === "failed");
    expect(batch.failed_at).toEqual(expect.any(Number));
    expect(batch.errors?.data?.map((e) => [e.line, e.code])).toEqual([
      [2, "invalid_json_line"],
      [3, "mismatched_url"],
      [4, "duplicate_custom_id"],
    ]);
    expect(batch.output_file_id).toBeNull();
  });

  it("puts a line the model cannot serve in the error file while the rest completes", async () => {
    const input = await upload(openai, [
      chatLine("small", "hello"),
      chatLine("huge", "hello", { max_tokens: 8000 }),
      chatLine("small-2", "hello again"),
    ]);
    const created = await openai.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const batch = await waitFor(openai, created.id, (b) => b.status === "completed");
    expect(batch.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
    expect((await jsonl(openai, batch.output_file_id!)).map((l) => l.custom_id).sort()).toEqual([
      "small",
      "small-2",
    ]);
    const [error] = await jsonl(openai, batch.error_file_id!);
    expect(error).toMatchObject({ custom_id: "huge", response: { status_code: 400 }, error: null });
    // The line refused without a model call counts no tokens.
    expect(batch.usage).toEqual(summedUsage(await jsonl(openai, batch.output_file_id!)));
    expect((error!.response!.body as { error: { code: string } }).error.code).toBe("context_length_exceeded");
  });

  it("answers OpenAI's errors on create: an unknown file is 404, a bad endpoint names its param", async () => {
    await expect(
      openai.batches.create({
        input_file_id: "file-nope",
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const input = await upload(openai, [chatLine("a", "b")]);
    const error = await openai.batches
      .create({ input_file_id: input.id, endpoint: "/v1/embeddings", completion_window: "24h" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("endpoint");
  });

  it("output_expires_after sets the output and error files' expires_at, after which they are not served", async () => {
    const input = await upload(openai, [
      chatLine("ok", "hello"),
      chatLine("huge", "hello", { max_tokens: 8000 }),
    ]);
    const created = await openai.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      output_expires_after: { anchor: "created_at", seconds: 7200 },
    });
    const batch = await waitFor(openai, created.id, (b) => b.status === "completed");
    const { stack: emu } = stack.pipeline;
    for (const id of [batch.output_file_id!, batch.error_file_id!]) {
      const file = await openai.files.retrieve(id);
      expect(file.expires_at).toBe(file.created_at + 7200);
      // Reads stop at expires_at: the store checks it (DynamoDB's TTL removes the item later).
      const store = new S3FileStore({ ddb: emu.ddb, s3: emu.s3, prefix: emu.prefix });
      expect(await store.get("acme", id)).toBeDefined();
      const now = vi.spyOn(Date, "now").mockReturnValue((file.expires_at! + 1) * 1000);
      try {
        expect(await store.get("acme", id)).toBeUndefined();
      } finally {
        now.mockRestore();
      }
    }
  });

  it("refuses a bad output_expires_after with a 400 naming the field, and creates no batch", async () => {
    const tenant = await stack.tenant("expiry");
    const input = await upload(tenant, [chatLine("a", "b")]);
    const bad = [
      [{ anchor: "created_at", seconds: 3599 }, "output_expires_after.seconds"],
      [{ anchor: "created_at", seconds: 2_592_001 }, "output_expires_after.seconds"],
      [{ anchor: "completed_at", seconds: 3600 }, "output_expires_after.anchor"],
      [{ seconds: 3600 }, "output_expires_after.anchor"],
    ] as const;
    for (const [value, param] of bad) {
      const error = await tenant.batches
        .create({
          input_file_id: input.id,
          endpoint: "/v1/chat/completions",
          completion_window: "24h",
          output_expires_after: value as OpenAI.Batches.BatchCreateParams.OutputExpiresAfter,
        })
        .catch((e: unknown) => e);
      expect(error, JSON.stringify(value)).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).status).toBe(400);
      expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(param);
    }
    expect((await tenant.batches.list()).data).toEqual([]);
  });

  it("the CLI (batch create --wait, results) and the typed client run the same batch", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dq-batch-"));
    const file = join(dir, "prompts.jsonl");
    const completion = (id: string) =>
      JSON.stringify({
        custom_id: id,
        method: "POST",
        url: "/v1/completions",
        body: { prompt: id, max_tokens: 8 },
      });
    writeFileSync(file, `${["p1", "p2", "p3"].map(completion).join("\n")}\n`);
    const auth = ["--url", stack.ingest.url, "--api-key", openai.apiKey!];
    const env = stack.pipeline.stack.env;
    const created = JSON.parse(
      (
        await runCli(
          ["batch", "create", file, "--endpoint", "/v1/completions", "--wait", "--json", ...auth],
          env,
        )
      ).stdout,
    ) as OpenAI.Batch;
    expect(created).toMatchObject({
      status: "completed",
      request_counts: { total: 3, completed: 3, failed: 0 },
    });
    const printed = (await runCli(["batch", "results", created.id, ...auth], env)).stdout.trim().split("\n");
    expect(printed.map((l) => JSON.parse(l).custom_id).sort()).toEqual(["p1", "p2", "p3"]);
    expect((await runCli(["batch", "get", created.id, ...auth], env)).stdout).toMatch(
      new RegExp(`^${created.id}  completed  3/3 completed, 0 failed  output=file-`),
    );

    const dq = new DeepqueueClient({ baseUrl: stack.ingest.url, apiKey: openai.apiKey! });
    const results = await dq.batches.results(created.id);
    const body = results.find((r) => r.custom_id === "p1")!.response!.body as OpenAI.Completion;
    expect(body.object).toBe("text_completion");
    expect(body.choices[0]!.text).toEqual(expect.any(String));
    expect(await dq.batches.results(created.id, { errors: true })).toEqual([]);
    const input = await dq.files.create(`${completion("again")}\n`, { filename: "again.jsonl" });
    const again = await dq.batches.waitFor(
      (await dq.batches.create({ input_file_id: input.id, endpoint: "/v1/completions" })).id,
      { intervalMs: 100 },
    );
    expect(again.status).toBe("completed");
    expect((await dq.batches.list({ limit: 1 })).data.map((b) => b.id)).toEqual([again.id]);
  });

  it("lists batches newest first with after/limit cursor pagination", async () => {
    const tenant = await stack.tenant("paged");
    const input = await upload(tenant, [chatLine("a", "b")]);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(
        (
          await tenant.batches.create({
            input_file_id: input.id,
            endpoint: "/v1/chat/completions",
            completion_window: "24h",
          })
        ).id,
      );
    }
    const first = await tenant.batches.list({ limit: 2 });
    expect(first.data.map((b) => b.id)).toEqual([made[4], made[3]]);
    expect(first.has_more).toBe(true);
    const all: string[] = [];
    for await (const batch of tenant.batches.list({ limit: 2 })) all.push(batch.id);
    expect(all).toEqual([...made].reverse());
    expect((await other.batches.list()).data.map((b) => b.id)).not.toContain(made[0]);
  });
});

async function drainEvents(stack: BatchStack, tenant: string): Promise<BatchEvent[]> {
  const { stack: emu } = stack.pipeline;
  const { QueueUrl } = await emu.sqs.send(
    new (await import("@aws-sdk/client-sqs")).GetQueueUrlCommand({
      QueueName: resultQueueName(emu.prefix, tenant),
    }),
  );
  const events: BatchEvent[] = [];
  for (;;) {
    const out = await emu.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: 60,
      }),
    );
    if (!out.Messages?.length) return events;
    for (const m of out.Messages) events.push(JSON.parse(m.Body!));
  }
}

describe("cancelling and expiring batches, with the batch lane held back", () => {
  let stack: BatchStack;
  let openai: OpenAI;

  beforeAll(async () => {
    stack = await startBatchStack({
      laneBudget: 0,
      env: { DEEPQUEUE_BATCH_WINDOW: "5", DEEPQUEUE_BATCH_CHUNK_LINES: "5" },
    });
    openai = await stack.tenant("initech");
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const tenLines = () => Array.from({ length: 10 }, (_, n) => chatLine(`c${n}`, `line ${n}`));
  const create = async () =>
    openai.batches.create({
      input_file_id: (await upload(openai, tenLines())).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });

  it("cancel: no more lines are sent, the queued ones finish, then cancelled with partial results", async () => {
    const created = await create();
    // One window (5 lines) is in the lane, held there.
    await waitFor(openai, created.id, (b) => b.status === "in_progress");
    const cancelling = await openai.batches.cancel(created.id);
    expect(cancelling.status).toBe("cancelling");
    expect(cancelling.cancelling_at).toEqual(expect.any(Number));
    stack.allowLines(5);
    const batch = await waitFor(openai, created.id, (b) => b.status === "cancelled");
    expect(batch.cancelled_at).toEqual(expect.any(Number));
    expect(batch.request_counts).toEqual({ total: 10, completed: 5, failed: 0 });
    expect((await jsonl(openai, batch.output_file_id!)).map((l) => l.custom_id).sort()).toEqual([
      "c0",
      "c1",
      "c2",
      "c3",
      "c4",
    ]);
    const unrun = await jsonl(openai, batch.error_file_id!);
    expect(unrun.map((l) => [l.custom_id, l.error?.code, l.response])).toEqual(
      ["c5", "c6", "c7", "c8", "c9"].map((id) => [id, "batch_cancelled", null]),
    );
    // The lines that ran count; the ones never sent do not.
    expect(batch.usage).toEqual(summedUsage(await jsonl(openai, batch.output_file_id!)));
    expect(batch.usage!.total_tokens).toBeGreaterThan(0);
    // Cancelling again answers the batch as it is.
    expect((await openai.batches.cancel(created.id)).status).toBe("cancelled");
  });

  it("a batch past its window expires: finished lines in the output, the rest batch_expired", async () => {
    const created = await create();
    await waitFor(openai, created.id, (b) => b.status === "in_progress");
    stack.allowLines(5);
    // The first window ran; the next one is in the lane, held.
    await waitFor(openai, created.id, (b) => b.request_counts?.completed === 5);
    expect(await stack.sweep()).toBe(0);
    stack.advanceClock(25 * 3600 * 1000);
    expect(await stack.sweep()).toBeGreaterThanOrEqual(1);
    const batch = await waitFor(openai, created.id, (b) => b.status === "expired");
    expect(batch.expired_at).toEqual(expect.any(Number));
    const finished = await jsonl(openai, batch.output_file_id!);
    expect(finished.length).toBe(5);
    expect(batch.usage).toEqual(summedUsage(finished));
    const expired = await jsonl(openai, batch.error_file_id!);
    expect(expired.map((l) => l.error?.code)).toEqual(Array(5).fill("batch_expired"));
    const events = await drainEvents(stack, "initech");
    expect(events.filter((e) => e.data.id === created.id).map((e) => e.type)).toEqual([
      "deepqueue.batch.expired",
    ]);
  });
});
