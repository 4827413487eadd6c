import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { describe, expect, it } from "vitest";
import type { RequestRecord } from "../../events/index.ts";
import { UnauthorizedError } from "../shared/errors.ts";
import { createLogger } from "../shared/logger.ts";
import type { ReplyInbox } from "./reply-queue.ts";
import { ReplyRouter } from "./reply-router.ts";
import { type IngestRequest, OpenAiRoutes } from "./routes.ts";

const record: RequestRecord = {
  id: "req_1",
  status: "completed",
  model: "deepseek-chat",
  created_at: "2026-11-28T09:00:00.000Z",
  result: {
    text: "Hello there",
    finish_reason: "stop",
    usage: { prompt_tokens: 4, completion_tokens: 2 },
    source: "model",
  },
};

/** Routes over fake deps: ingest accepts and the "pipeline" replies through an in-memory router. */
function routes(options: { reply?: (router: ReplyRouter) => void; noQueue?: boolean } = {}) {
  const router = new ReplyRouter();
  const submitted: IngestRequest[] = [];
  const inbox: ReplyInbox = {
    url: async () => {
      if (options.noQueue) throw Object.assign(new Error("denied"), { name: "AccessDenied" });
      return "https://sqs/reply";
    },
    subscribe: (id, listener) => router.subscribe(id, listener),
    close: async () => {},
  };
  const auth = {
    authenticate: async (headers: Record<string, string | undefined>) => {
      if (headers.authorization !== "Bearer good") throw new UnauthorizedError();
      return { tenant: { tenant: "acme" } };
    },
  };
  const ingest = {
    submit: async (req: IngestRequest) => {
      await auth.authenticate(req.headers);
      submitted.push(req);
      setTimeout(() => options.reply?.(router), 5);
      return { status: 202, body: { id: "req_1" } };
    },
    getRequest: async () => ({ status: 200, body: { ...record, status: "queued", result: undefined } }),
  };
  const r = new OpenAiRoutes({
    ingest,
    auth,
    replies: inbox,
    settings: { model: "deepseek-chat" },
    logger: createLogger({ level: "silent" }),
  });
  return { r, submitted };
}

const event = (body: unknown, key = "good") =>
  ({
    headers: { authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  }) as unknown as APIGatewayProxyEventV2;

const chat = { model: "deepseek-chat", messages: [{ role: "user", content: "Hi" }] };
const done = (router: ReplyRouter) => router.dispatch({ type: "done", request_id: "req_1", record });

describe("OpenAiRoutes", () => {
  it("submits the mapped body with this replica's reply queue and answers from the done reply", async () => {
    const { r, submitted } = routes({ reply: done });
    const res = await r.chatCompletions(event(chat));
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body!)).toMatchObject({
      id: "req_1",
      choices: [{ message: { content: "Hello there" } }],
    });
    expect(submitted[0]!.reply).toEqual({ queue_url: "https://sqs/reply", stream: false });
    expect(JSON.parse(submitted[0]!.body)).toMatchObject({ messages: [{ role: "user", content: "Hi" }] });
  });

  it("streams: the body is a stream of SSE chunks ending with [DONE]", async () => {
    const { r } = routes({
      reply: (router) => {
        router.dispatch({ type: "delta", request_id: "req_1", seq: 0, text: "Hello" });
        done(router);
      },
    });
    const res = await r.chatCompletions(event({ ...chat, stream: true }));
    expect(res.headers?.["content-type"]).toContain("text/event-stream");
    let text = "";
    for await (const part of res.body as unknown as ReadableStream<string>) text += part;
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(text).toContain('"content":"Hello"');
    expect(text).toContain('"content":" there"');
  });

  it("ends a stream with an error, not a contradiction, when the stored answer does not continue the text shown", async () => {
    const { r } = routes({
      reply: (router) => {
        router.dispatch({ type: "delta", request_id: "req_1", seq: 0, text: "Bye" });
        done(router);
      },
    });
    const res = await r.chatCompletions(event({ ...chat, stream: true }));
    let text = "";
    for await (const part of res.body as unknown as ReadableStream<string>) text += part;
    expect(text).toContain('"content":"Bye"');
    expect(text).toContain("GET /v1/requests/req_1");
    expect(text).not.toContain("Hello there");
    expect(text).not.toContain("[DONE]");
  });

  it("checks the key before refusing a body, and names the model it does not serve", async () => {
    const { r } = routes();
    expect((await r.chatCompletions(event({ ...chat, n: 2 }, "bad"))).statusCode).toBe(401);
    const unknown = await r.chatCompletions(event({ ...chat, model: "gpt-4o" }));
    expect(unknown.statusCode).toBe(404);
    expect(JSON.parse(unknown.body!).error).toMatchObject({ code: "model_not_found", param: "model" });
  });

  it("answers 503, accepting nothing, when the replica cannot make its reply queue", async () => {
    const { r, submitted } = routes({ noQueue: true });
    const res = await r.chatCompletions(event(chat));
    expect(res.statusCode).toBe(503);
    expect(JSON.parse(res.body!).error).toMatchObject({ type: "server_error", code: "unavailable" });
    expect(submitted).toHaveLength(0);
  });

  it("answers 504 naming the request when no reply comes within the HTTP request's time", async () => {
    const { r } = routes();
    const context = { getRemainingTimeInMillis: () => 1_050 } as never;
    const res = await r.chatCompletions(event(chat), context);
    expect(res.statusCode).toBe(504);
    expect(res.headers?.location).toBe("/v1/requests/req_1");
  });
});
