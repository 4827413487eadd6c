import {
  DeleteMessageCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AcceptedRequest, ReplyMessage } from "../../events/index.ts";
import { startTestStack, type TestStack } from "../../test/helpers/emulators.ts";
import { makeTenant } from "../../test/helpers/ingest.ts";
import { ingestDepsFromEnv } from "../ingest/deps.ts";
import { createIngestFromEnv, createIngestHandler } from "../ingest/handler.ts";
import { type HttpServerHandle, serveHttp } from "../runtime/http.ts";
import { createLogger } from "../shared/logger.ts";
import { queueName } from "../shared/names.ts";
import { DynamoRequestStore, toPublicRecord } from "../shared/stores/requests.ts";
import { replyQueueName } from "./config.ts";

const silent = createLogger({ level: "silent" });
const MODEL = "deepseek-chat";
const FALLBACK = "deepseek-chat-small";

/**
 * Stands in for the pipeline's finishing side (the batcher and the cache stage) until they send
 * replies themselves: reads what ingest enqueued and, for a request with a reply queue, sends the
 * answer there in deltas (with `stream`), completes the record, then sends `done` with it.
 * A prompt "please fail" fails the request; "never answer" is left alone.
 */
class FakeReplier {
  readonly sent = new Map<string, string>();
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly sqs: SQSClient,
    private readonly requests: DynamoRequestStore,
    private readonly queues: string[],
  ) {}

  start(): void {
    this.#loop = Promise.all(
      this.queues.map(async (url) => {
        while (!this.#stopped) await this.#poll(url);
      }),
    ).then(() => {});
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  async #poll(url: string): Promise<void> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    for (const message of out.Messages ?? []) {
      const request = (JSON.parse(message.Body!) as { data: AcceptedRequest }).data;
      await this.sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: message.ReceiptHandle }));
      if (request.reply) await this.#answer(request, request.reply);
    }
  }

  async #answer(request: AcceptedRequest, reply: NonNullable<AcceptedRequest["reply"]>): Promise<void> {
    const prompt = request.prompt ?? request.messages?.at(-1)?.content ?? "";
    if (prompt === "never answer") return;
    const send = (body: ReplyMessage) =>
      this.sqs.send(new SendMessageCommand({ QueueUrl: reply.queue_url, MessageBody: JSON.stringify(body) }));
    if (prompt === "please fail") {
      const { record } = await this.requests.fail(request.id, {
        code: "model_unavailable",
        message: "the model server is unavailable",
      });
      await send({ type: "done", request_id: request.id, record: toPublicRecord(record) });
      return;
    }
    const text = `You said: ${prompt}. That is all.`;
    this.sent.set(request.id, text);
    if (reply.stream) {
      const pieces = [text.slice(0, 4), text.slice(4, 12), text.slice(12, 20)];
      // Sent out of order: SQS standard queues may reorder; the stream puts them back by seq.
      for (const seq of [1, 0, 2])
        await send({ type: "delta", request_id: request.id, seq, text: pieces[seq]! });
    }
    const { record } = await this.requests.complete(request.id, {
      text,
      finish_reason: "stop",
      usage: { prompt_tokens: request.prompt_tokens, completion_tokens: 7 },
      source: "model",
    });
    await send({ type: "done", request_id: request.id, record: toPublicRecord(record) });
  }
}

async function replyQueues(stack: TestStack): Promise<string[]> {
  const out = await stack.sqs.send(
    new ListQueuesCommand({ QueueNamePrefix: replyQueueName(stack.prefix, "") }),
  );
  return out.QueueUrls ?? [];
}

describe("chat and text completions through the queue, driven by the official openai client", () => {
  let stack: TestStack;
  let server: HttpServerHandle;
  let handler: ReturnType<typeof createIngestHandler>;
  let replier: FakeReplier;
  let client: OpenAI;
  let apiKey: string;

  beforeAll(async () => {
    stack = await startTestStack();
    const deps = ingestDepsFromEnv({ ...stack.env, DEEPQUEUE_MAX_MODEL_LEN: "4096" }, { logger: silent });
    handler = createIngestHandler(deps, {
      openai: { model: MODEL, fallbackModel: FALLBACK, deadlineSeconds: 60 },
    });
    server = await serveHttp(handler, { port: 0, host: "127.0.0.1", drainMs: 1000 });
    apiKey = (await makeTenant(stack, "acme", { dailyRequests: null })).api_key;
    const requests = new DynamoRequestStore(stack.ddb, stack.prefix);
    const { QueueUrls } = await import("../shared/queues.ts");
    const urls = new QueueUrls(stack.sqs);
    replier = new FakeReplier(stack.sqs, requests, [
      await urls.get(queueName(stack.prefix, "requests")),
      await urls.get(queueName(stack.prefix, "inference")),
    ]);
    replier.start();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
  }, 60_000);

  afterAll(async () => {
    await replier?.stop();
    await server?.close();
    await handler?.close();
    await stack?.stop();
  });

  it("answers chat.completions.create in OpenAI's shape, its id readable with GET /v1/requests/{id}", async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "hello there" },
      ],
      max_completion_tokens: 32,
      temperature: 0.5,
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.model).toBe(MODEL);
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]!.message).toMatchObject({
      role: "assistant",
      content: replier.sent.get(completion.id),
    });
    expect(completion.choices[0]!.finish_reason).toBe("stop");
    expect(completion.usage!.completion_tokens).toBe(7);
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + 7);
    expect(Math.abs(completion.created - Date.now() / 1000)).toBeLessThan(60);

    const record = await fetch(`${server.url}/v1/requests/${completion.id}`, {
      headers: { authorization: `Bearer ${apiKey}` },
    }).then((r) => r.json() as Promise<{ status: string; result: { text: string } }>);
    expect(record).toMatchObject({ id: completion.id, status: "completed" });
    expect(record.result.text).toBe(completion.choices[0]!.message.content);
  });

  it("streams chat as chunks in order, ending with the finish reason and the usage; the text is the stored result", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "stream me a story" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const id = chunks[0]!.id;
    expect(chunks.every((c) => c.id === id && c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(content).toBe(replier.sent.get(id));
    // The deltas came (out of order, put back in order), then the rest of the final text.
    expect(chunks.slice(1, 4).map((c) => c.choices[0]!.delta.content)).toEqual([
      "You ",
      "said: st",
      "ream me ",
    ]);
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]!.finish_reason).toBe("stop");
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage!.completion_tokens).toBe(7);

    const record = await fetch(`${server.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${apiKey}` },
    }).then((r) => r.json() as Promise<{ status: string; result: { text: string } }>);
    expect(record.result.text).toBe(content);
  });

  it("answers completions.create (plain and streamed)", async () => {
    const completion = await client.completions.create({ model: MODEL, prompt: "Say hi", max_tokens: 8 });
    expect(completion.object).toBe("text_completion");
    expect(completion.choices[0]!.text).toBe(replier.sent.get(completion.id));
    expect(completion.usage!.completion_tokens).toBe(7);

    const stream = await client.completions.create({ model: FALLBACK, prompt: "Say more", stream: true });
    let text = "";
    let finish: string | null = null;
    let id = "";
    for await (const chunk of stream) {
      id = chunk.id;
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(replier.sent.get(id));
    expect(finish).toBe("stop");
  });

  it("answers a replayed Idempotency-Key from the first request's record, plain or streamed", async () => {
    const body = { model: MODEL, messages: [{ role: "user" as const, content: "once only" }] };
    const options = { headers: { "Idempotency-Key": `chat-replay-${Date.now()}` } };
    const first = await client.chat.completions.create(body, options);
    const again = await client.chat.completions.create(body, options);
    expect(again.id).toBe(first.id);
    expect(again.choices[0]!.message.content).toBe(first.choices[0]!.message.content);
    const stream = await client.chat.completions.create({ ...body, stream: true }, options);
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.id === first.id)).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(
      first.choices[0]!.message.content,
    );
  });

  it("lists the configured model and its fallback in models.list, and retrieves each", async () => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models.map((m) => m.id)).toEqual([MODEL, FALLBACK]);
    expect(models[0]).toMatchObject({ object: "model", owned_by: "deepqueue" });
    expect(typeof models[0]!.created).toBe("number");
    expect(await client.models.retrieve(FALLBACK)).toMatchObject({ id: FALLBACK, object: "model" });
    const unknown = await client.models.retrieve("gpt-4o").catch((e) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown.code).toBe("model_not_found");
  });

  it("raises the client's own error classes: bad key, n=2 with its param, an unknown model, a prompt too long", async () => {
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "dq_not_a_key", maxRetries: 0 });
    const messages = [{ role: "user" as const, content: "hi" }];
    await expect(bad.chat.completions.create({ model: MODEL, messages })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
    // A refused body with a bad key is still a 401: nothing is said about the body.
    await expect(bad.chat.completions.create({ model: MODEL, messages, n: 2 })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);

    const n2 = await client.chat.completions.create({ model: MODEL, messages, n: 2 }).catch((e) => e);
    expect(n2).toBeInstanceOf(OpenAI.BadRequestError);
    expect(n2.param).toBe("n");
    expect(n2.type).toBe("invalid_request_error");

    const tools = await client.chat.completions
      .create({ model: MODEL, messages, tools: [{ type: "function", function: { name: "f" } }] })
      .catch((e) => e);
    expect(tools).toBeInstanceOf(OpenAI.BadRequestError);
    expect(tools.param).toBe("tools");

    const unknown = await client.chat.completions.create({ model: "gpt-4o", messages }).catch((e) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown.code).toBe("model_not_found");

    const long = await client.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "word ".repeat(5000) }], max_tokens: 100 })
      .catch((e) => e);
    expect(long).toBeInstanceOf(OpenAI.BadRequestError);
    expect(long.code).toBe("prompt_too_long");
  });

  it("charges refused bodies to the tenant's abuse budget, as POST /v1/requests does: spent, it is a 429", async () => {
    const deps = ingestDepsFromEnv(
      { ...stack.env, DEEPQUEUE_ABUSE_BUDGET: "2", DEEPQUEUE_ABUSE_REFILL_PER_SECOND: "0.01" },
      { logger: silent },
    );
    const strict = createIngestHandler(deps, { openai: { model: MODEL } });
    const strictServer = await serveHttp(strict, { port: 0, host: "127.0.0.1" });
    const abuser = new OpenAI({ baseURL: `${strictServer.url}/v1`, apiKey, maxRetries: 0 });
    const refused = () =>
      abuser.chat.completions
        .create({ model: MODEL, messages: [{ role: "user", content: "x" }], n: 3 })
        .catch((e) => e);
    expect(await refused()).toBeInstanceOf(OpenAI.BadRequestError);
    expect(await refused()).toBeInstanceOf(OpenAI.BadRequestError);
    expect(await refused()).toBeInstanceOf(OpenAI.RateLimitError);
    await strictServer.close();
    await strict.close();
  });

  it("answers a failed request with OpenAI's error shape, its failure code and a fitting status", async () => {
    const failed = await client.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "please fail" }] })
      .catch((e) => e);
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    expect(failed.status).toBe(503);
    expect(failed.code).toBe("model_unavailable");

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "please fail" }],
      stream: true,
    });
    const streamed = await (async () => {
      for await (const _ of stream);
    })().catch((e) => e);
    expect(streamed).toBeInstanceOf(OpenAI.APIError);
    expect(streamed.code).toBe("model_unavailable");
  });

  it("gives up on an answer that does not come within the HTTP request's time: 504 naming the request to poll", async () => {
    // The same handler behind a short HTTP time: an unanswered request ends with a 504 after ~1.5 s.
    const short = await serveHttp(handler, { port: 0, host: "127.0.0.1", requestTimeoutMs: 2500 });
    const late = await new OpenAI({ baseURL: `${short.url}/v1`, apiKey, maxRetries: 0 }).chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "never answer" }] })
      .catch((e) => e);
    await short.close();
    expect(late).toBeInstanceOf(OpenAI.APIError);
    expect(late.status).toBe(504);
    expect(late.message).toMatch(/GET \/v1\/requests\/\S+/);
  });

  it("made one reply queue for this replica, and deletes it on close", async () => {
    expect(await replyQueues(stack)).toHaveLength(1);
    await handler.close();
    expect(await replyQueues(stack)).toHaveLength(0);
  });

  it("deletes the replica's queue when the ingest of deepqueue serve closes (createIngestFromEnv)", async () => {
    const served = createIngestFromEnv({ ...stack.env, DEEPQUEUE_FALLBACK_MODEL: FALLBACK });
    const other = await serveHttp(served, { port: 0, host: "127.0.0.1" });
    const answer = await new OpenAI({
      baseURL: `${other.url}/v1`,
      apiKey,
      maxRetries: 0,
    }).chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "from another replica" }],
    });
    expect(answer.choices[0]!.message.content).toBe(replier.sent.get(answer.id));
    expect(await replyQueues(stack)).toHaveLength(1);
    await other.close();
    await served.close();
    expect(await replyQueues(stack)).toHaveLength(0);
  });
});
